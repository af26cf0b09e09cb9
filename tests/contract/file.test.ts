import { fileFixture } from "../backends/file/fixture.ts";
import { contract } from "./suite.ts";

contract(await fileFixture());
