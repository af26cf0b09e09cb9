import { consulFixture } from "../backends/consul/fixture.ts";
import { contract } from "./suite.ts";

contract(await consulFixture());
