export { Client, apiError, type ClientOptions, type PromptOptions, type RequestOptions } from "./client.js";
export * from "./errors.js";
export { Feed, FEED_PROTOCOL, type WebSocketConstructor, type WebSocketLike } from "./feed.js";
export { OPERATIONS, type OperationName } from "./operations.js";
export { delayForConnection, delayForStatus, parseRetryAfter, type RetryPolicy } from "./retry.js";
export { QueryStream, decodeEvent } from "./stream.js";
export * from "./types.js";
export { VERSION } from "./version.js";
