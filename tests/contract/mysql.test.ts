import { mysqlFixture } from "../backends/sql/fixture.ts";
import { contract } from "./suite.ts";

contract(await mysqlFixture(), "mysql");
