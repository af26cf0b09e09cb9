import { etcdFixture } from "../backends/etcd/fixture.ts";
import { contract } from "./suite.ts";

contract(etcdFixture("etcd3"));
