// The statement counter lives with the dev proxy it serves; re-exported for the support tests.
export { FrontendStatementCounter } from "../../cli/dev_proxy/ws_proxy.ts";
