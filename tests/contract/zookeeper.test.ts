import { zookeeperFixture } from "../backends/zookeeper/fixture.ts";
import { contract } from "./suite.ts";

contract(zookeeperFixture());
