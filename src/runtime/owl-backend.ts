/** The owl engine backend (in progress). */
import { OwlError } from "../util/errors.ts";
import type { Backend, LoadedModel, LoadOptions } from "./types.ts";

export class OwlBackend implements Backend {
  readonly name = "owl";
  async load(_options: LoadOptions): Promise<LoadedModel> {
    throw new OwlError("ERR_UNSUPPORTED", "the owl backend is not ready yet");
  }
}
