import { APIConnectionError, AimmError } from "./errors.js";
import { feedEvent, type FeedEvent } from "./types.js";

/** The parts of the WHATWG WebSocket the feed uses (browsers, Node >= 22, undici, `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (event: any) => void): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[], options?: any) => WebSocketLike;

/** Browsers can't set headers on a WebSocket: the key rides in a subprotocol, `bearer.<key>`. */
export const FEED_PROTOCOL = "aimm.v1";

/** A live-feed subscription: `for await (const event of feed)`; `close()` ends it. */
export class Feed implements AsyncIterable<FeedEvent> {
  private socket: WebSocketLike | null = null;
  private opening: Promise<this> | null = null;
  private readonly queue: FeedEvent[] = [];
  private waiting: ((r: IteratorResult<FeedEvent>) => void) | null = null;
  private failed: ((e: unknown) => void) | null = null;
  private error: unknown = null;
  private closed = false;

  constructor(
    private readonly Impl: WebSocketConstructor,
    readonly url: string,
    readonly channels: string[],
    private readonly apiKey: string | undefined,
    private readonly headersAllowed: boolean,
    private readonly signal?: AbortSignal,
  ) {}

  /** Resolves once the connection is open (iteration opens it too). */
  open(): Promise<this> {
    this.opening ??= this.connect();
    return this.opening;
  }

  private connect(): Promise<this> {
    const protocols = this.apiKey ? [FEED_PROTOCOL, `bearer.${this.apiKey}`] : [FEED_PROTOCOL];
    const options = this.headersAllowed && this.apiKey ? { headers: { authorization: `Bearer ${this.apiKey}` } } : undefined;
    const socket = new this.Impl(this.url, protocols, options);
    this.socket = socket;
    this.signal?.addEventListener("abort", () => this.close(), { once: true });
    return new Promise((resolve, reject) => {
      let opened = false;
      socket.addEventListener("open", () => {
        opened = true;
        resolve(this);
      });
      socket.addEventListener("message", (event: { data: unknown }) => this.push(event.data));
      socket.addEventListener("error", () => {
        if (!opened) reject(new APIConnectionError(`live feed: cannot connect to ${this.url.split("?")[0]}`));
      });
      socket.addEventListener("close", (event: { code: number; reason: string }) => {
        if (!opened) reject(new APIConnectionError(`live feed refused (close code ${event.code})`));
        else if (!this.closed && event.code !== 1000) this.fail(new APIConnectionError(`live feed closed: ${event.code} ${event.reason}`));
        this.finish();
      });
    });
  }

  private push(data: unknown): void {
    let event: FeedEvent;
    try {
      event = feedEvent(JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data as ArrayBuffer)));
    } catch {
      return this.fail(new AimmError("live feed: a message was not JSON"));
    }
    if (this.waiting) {
      const resolve = this.waiting;
      this.waiting = this.failed = null;
      resolve({ value: event, done: false });
    } else this.queue.push(event);
  }

  private fail(error: unknown): void {
    this.error = error;
    if (this.failed) this.failed(error);
    this.waiting = this.failed = null;
  }

  private finish(): void {
    this.closed = true;
    if (this.waiting) this.waiting({ value: undefined, done: true });
    this.waiting = this.failed = null;
  }

  /** The next event. */
  async next(): Promise<IteratorResult<FeedEvent>> {
    await this.open();
    if (this.queue.length) return { value: this.queue.shift()!, done: false };
    if (this.error) throw this.error;
    if (this.closed) return { value: undefined, done: true };
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failed = reject;
    });
  }

  close(): void {
    this.closed = true;
    this.socket?.close(1000);
    this.finish();
  }

  [Symbol.asyncIterator](): AsyncIterator<FeedEvent> {
    return { next: () => this.next(), return: async () => (this.close(), { value: undefined, done: true }) };
  }
}
