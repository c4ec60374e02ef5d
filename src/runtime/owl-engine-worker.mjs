// Entry of the owl engine's thread (owl-engine.ts starts it): a worker thread has no TypeScript
// loader of its own, so this plain JavaScript file registers tsx's, as bin/owl.js does for the
// main thread, then runs owl-engine-host.ts, which loads the model and answers requests.
import { register } from "tsx/esm/api";

register();
await import(new URL("./owl-engine-host.ts", import.meta.url).href);
