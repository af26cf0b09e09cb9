import { redisFixture } from "../backends/redis/fixture.ts";
import { contract } from "./suite.ts";

contract(await redisFixture());
