import { postgresFixture } from "../backends/sql/fixture.ts";
import { contract } from "./suite.ts";

contract(await postgresFixture(), "postgres");
