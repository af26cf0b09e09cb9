import { memcachedFixture } from "../backends/memcached/fixture.ts";
import { contract } from "./suite.ts";

contract(await memcachedFixture());
