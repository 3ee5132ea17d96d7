/**
 * The attnlab Jupyter kernel: the five ZeroMQ sockets of a connection file and the messages of spec 5.3.
 *
 * Shell requests are handled one at a time, in order of arrival. Every shell and control request is bracketed by
 * `status: busy` / `status: idle` on IOPub, and everything a request causes on IOPub (streams, displays, results,
 * errors) is sent between the two.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspect as utilInspect } from 'node:util';
import type * as Zmq from 'zeromq';
import { type MimeBundle, setDisplaySink, toMimeBundle } from '../lib/display/index.js';
import {
  Engine,
  errorOutcome,
  isComplete,
  PACKAGE_ROOT,
  type RunOutcome,
  requireTslab,
  ts,
  tslabJupyter,
} from './engine.js';
import { History, type HistoryRequest } from './history.js';
import { decode, encode, type Message, PROTOCOL_VERSION, Signer } from './wire.js';

export interface ConnectionInfo {
  transport: string;
  ip: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  key: string;
  signature_scheme?: string;
}

type Socket = Zmq.Router | Zmq.Publisher | Zmq.Reply;
type StreamName = 'stdout' | 'stderr';
type StrayEvent = 'uncaughtException' | 'unhandledRejection';

const STREAM_FLUSH_MS = 20;
const STREAM_FLUSH_CHARS = 64 * 1024;

/** zeromq allows one pending send per socket; this keeps sends in order without ever overlapping. */
class Outbox {
  private chain: Promise<void> = Promise.resolve();
  constructor(private readonly socket: Socket) {}
  send(frames: (Buffer | string)[]): Promise<void> {
    this.chain = this.chain.then(() => this.socket.send(frames)).catch((e) => logKernel('send failed', e));
    return this.chain;
  }
  drain(): Promise<void> {
    return this.chain;
  }
}

const realStderrWrite = process.stderr.write.bind(process.stderr);
function logKernel(...args: unknown[]): void {
  realStderrWrite(`[attnlab kernel] ${args.map((a) => (typeof a === 'string' ? a : utilInspect(a))).join(' ')}\n`);
}

interface ExecuteRequest {
  code: string;
  silent?: boolean;
  store_history?: boolean;
  user_expressions?: Record<string, string>;
  stop_on_error?: boolean;
}

const packageVersion = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;
const tslabVersion = (requireTslab('./package.json') as { version: string }).version;

export function kernelInfo(): Record<string, unknown> {
  return {
    status: 'ok',
    protocol_version: PROTOCOL_VERSION,
    implementation: 'attnlab',
    implementation_version: packageVersion,
    language_info: {
      name: 'typescript',
      version: ts.version,
      mimetype: 'text/typescript',
      file_extension: '.ts',
      pygments_lexer: 'typescript',
      // Both keys: JupyterLab reads `name`, the classic notebook needs `typescript: true` on the javascript mode.
      codemirror_mode: { name: 'javascript', typescript: true },
      nbconvert_exporter: 'script',
    },
    banner: `attnlab ${packageVersion}: TypeScript ${ts.version} on Node ${process.version} (compiler and executor from tslab ${tslabVersion})`,
    help_links: [
      { text: 'TypeScript handbook', url: 'https://www.typescriptlang.org/docs/handbook/' },
      { text: 'TensorFlow.js API', url: 'https://js.tensorflow.org/api/latest/' },
    ],
    debugger: false,
  };
}

export class KernelServer {
  private readonly signer: Signer;
  private readonly session = randomUUID();
  private readonly engine: Engine;
  private readonly history = new History();
  private executionCount = 0;
  private received = 0;
  /** Execute requests received up to this sequence number are aborted (a cell before them failed). */
  private abortThrough = 0;
  private shellChain: Promise<void> = Promise.resolve();
  /** Output (streams, displays) goes to the request that ran last, as in IPython, even after it finished. */
  private outputParent: Message<unknown> | undefined;
  private sockets!: { shell: Zmq.Router; control: Zmq.Router; stdin: Zmq.Router; iopub: Zmq.Publisher; hb: Zmq.Reply };
  private iopub!: Outbox;
  /** Stream text written but not yet published: one stream at a time, so stdout and stderr keep their interleaving. */
  private pendingStream: { name: StreamName; parent: Message<unknown>; chunks: string[]; size: number } | undefined;
  private streamTimer: NodeJS.Timeout | undefined;
  private shellOut!: Outbox;
  private controlOut!: Outbox;

  constructor(private readonly conn: ConnectionInfo) {
    this.signer = new Signer(conn.key, conn.signature_scheme);
    this.engine = new Engine();
  }

  async start(): Promise<void> {
    const zmq: typeof Zmq = requireTslab('zeromq');
    this.sockets = {
      shell: new zmq.Router(),
      control: new zmq.Router(),
      stdin: new zmq.Router(),
      // Wait for room past the high-water mark instead of dropping output (the default for PUB sockets).
      iopub: new zmq.Publisher({ noDrop: true }),
      hb: new zmq.Reply(),
    };
    this.iopub = new Outbox(this.sockets.iopub);
    this.shellOut = new Outbox(this.sockets.shell);
    this.controlOut = new Outbox(this.sockets.control);
    const url = (port: number) => `${this.conn.transport}://${this.conn.ip}:${port}`;
    await Promise.all([
      this.sockets.shell.bind(url(this.conn.shell_port)),
      this.sockets.control.bind(url(this.conn.control_port)),
      this.sockets.stdin.bind(url(this.conn.stdin_port)),
      this.sockets.iopub.bind(url(this.conn.iopub_port)),
      this.sockets.hb.bind(url(this.conn.hb_port)),
    ]);
    this.captureOutput();
    this.ownStrayErrorHandlers();
    void this.heartbeat();
    void this.listen(this.sockets.shell, this.shellOut, true);
    void this.listen(this.sockets.control, this.controlOut, false);
  }

  private async heartbeat(): Promise<void> {
    for await (const frames of this.sockets.hb) await this.sockets.hb.send(frames);
  }

  private async listen(socket: Zmq.Router, out: Outbox, serial: boolean): Promise<void> {
    for await (const frames of socket) {
      let msg: Message;
      try {
        msg = decode(frames, this.signer);
      } catch (e) {
        logKernel('dropped a message:', e);
        continue;
      }
      const seq = ++this.received;
      const task = () => this.handle(msg, out, seq).catch((e) => logKernel(`${msg.header.msg_type} failed:`, e));
      if (serial) this.shellChain = this.shellChain.then(task);
      else void task();
    }
  }

  private publish(
    msgType: string,
    content: unknown,
    parent: Message<unknown> | undefined,
    metadata?: Record<string, unknown>,
  ): void {
    this.flushStream(); // a stream's text goes out before whatever the code did after writing it
    void this.iopub.send(encode(this.signer, this.session, msgType, content, parent, [Buffer.from(msgType)], metadata));
  }

  private reply(out: Outbox, parent: Message<unknown>, msgType: string, content: unknown): Promise<void> {
    return out.send(encode(this.signer, this.session, msgType, content, parent, parent.identities));
  }

  private async handle(msg: Message, out: Outbox, seq: number): Promise<void> {
    const type = msg.header.msg_type;
    this.publish('status', { execution_state: 'busy' }, msg);
    try {
      switch (type) {
        case 'kernel_info_request':
          await this.reply(out, msg, 'kernel_info_reply', kernelInfo());
          break;
        case 'execute_request':
          await this.execute(msg as Message<unknown> as Message<ExecuteRequest>, out, seq);
          break;
        case 'is_complete_request':
          await this.reply(out, msg, 'is_complete_reply', isComplete(String(msg.content.code ?? '')));
          break;
        case 'complete_request':
          await this.reply(out, msg, 'complete_reply', this.complete(msg));
          break;
        case 'inspect_request':
          await this.reply(out, msg, 'inspect_reply', this.inspect(msg));
          break;
        case 'history_request':
          await this.reply(out, msg, 'history_reply', {
            status: 'ok',
            history: this.history.query(msg.content as HistoryRequest),
          });
          break;
        case 'comm_info_request':
          // No comm targets are registered, so there are no open comms to report for any target.
          await this.reply(out, msg, 'comm_info_reply', { status: 'ok', comms: {} });
          break;
        case 'comm_open':
          // Unknown target: tell the frontend the comm is closed, as ipykernel does.
          this.publish('comm_close', { comm_id: msg.content.comm_id, data: {} }, msg);
          break;
        case 'comm_msg':
        case 'comm_close':
          break;
        case 'interrupt_request':
          this.engine.interrupt();
          await this.reply(out, msg, 'interrupt_reply', { status: 'ok' });
          break;
        case 'shutdown_request':
          await this.reply(out, msg, 'shutdown_reply', { status: 'ok', restart: Boolean(msg.content.restart) });
          this.publish('status', { execution_state: 'idle' }, msg);
          await this.shutdown();
          return;
        default:
          logKernel(`unsupported message type ${type}`);
      }
    } finally {
      this.publish('status', { execution_state: 'idle' }, msg);
    }
  }

  private async execute(msg: Message<ExecuteRequest>, out: Outbox, seq: number): Promise<void> {
    const { code, silent = false, store_history = true, user_expressions = {}, stop_on_error = true } = msg.content;
    if (seq <= this.abortThrough) {
      await this.reply(out, msg, 'execute_reply', { status: 'aborted', execution_count: this.executionCount });
      return;
    }
    if (!silent && store_history) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.publish('execute_input', { code, execution_count: count }, msg);
    if (store_history) this.history.add(count, code);
    this.outputParent = msg;

    const outcome = await this.engine.run(code, `Cell In[${count}]`);
    if (outcome.status === 'ok' && outcome.hasValue && !silent) {
      const data = this.bundleOf(outcome.value);
      this.publish('execute_result', { execution_count: count, data, metadata: {} }, msg);
      if (store_history && typeof data['text/plain'] === 'string') this.history.setOutput(count, data['text/plain']);
    }
    if (outcome.status === 'error') {
      const { ename, evalue, traceback } = outcome;
      if (!silent) this.publish('error', { ename, evalue, traceback }, msg);
      if (stop_on_error) this.abortThrough = this.received;
      await this.reply(out, msg, 'execute_reply', {
        status: 'error',
        execution_count: count,
        ename,
        evalue,
        traceback,
      });
      return;
    }
    const expressions: Record<string, unknown> = {};
    for (const [name, expr] of Object.entries(user_expressions)) {
      expressions[name] = this.expressionResult(await this.engine.run(expr));
    }
    await this.reply(out, msg, 'execute_reply', {
      status: 'ok',
      execution_count: count,
      payload: [],
      user_expressions: expressions,
    });
  }

  private expressionResult(outcome: RunOutcome): Record<string, unknown> {
    if (outcome.status === 'error') return outcome;
    return {
      status: 'ok',
      data: outcome.hasValue ? this.bundleOf(outcome.value) : { 'text/plain': 'undefined' },
      metadata: {},
    };
  }

  private bundleOf(value: unknown): MimeBundle {
    try {
      return toMimeBundle(value);
    } catch (e) {
      logKernel('formatter failed:', e);
      return { 'text/plain': utilInspect(value) };
    }
  }

  private complete(msg: Message): Record<string, unknown> {
    const code = String(msg.content.code ?? '');
    const cursor = Number(msg.content.cursor_pos ?? code.length);
    try {
      const r = this.engine.complete(code, cursor);
      return { status: 'ok', matches: r.matches, cursor_start: r.start, cursor_end: r.end, metadata: {} };
    } catch (e) {
      logKernel('completion failed:', e);
      return { status: 'ok', matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} };
    }
  }

  private inspect(msg: Message): Record<string, unknown> {
    const code = String(msg.content.code ?? '');
    const cursor = Number(msg.content.cursor_pos ?? code.length);
    let text: string | undefined;
    try {
      text = this.engine.inspect(code, cursor);
    } catch (e) {
      logKernel('inspection failed:', e);
    }
    return text
      ? { status: 'ok', found: true, data: { 'text/plain': text }, metadata: {} }
      : { status: 'ok', found: false, data: {}, metadata: {} };
  }

  /**
   * Coalesce writes: one IOPub message per write would be a million messages for a million-line loop. Text is sent
   * when the stream or the request changes, at 64 KiB, 20 ms after the first unsent write, and before any other message.
   */
  private writeStream(name: StreamName, text: string, parent: Message<unknown>): void {
    const pending = this.pendingStream;
    if (pending && (pending.name !== name || pending.parent !== parent)) this.flushStream();
    if (!this.pendingStream) {
      this.pendingStream = { name, parent, chunks: [], size: 0 };
      this.streamTimer = setTimeout(() => this.flushStream(), STREAM_FLUSH_MS);
    }
    const target = this.pendingStream!;
    target.chunks.push(text);
    target.size += text.length;
    if (target.size >= STREAM_FLUSH_CHARS) this.flushStream();
  }

  private flushStream(): void {
    const pending = this.pendingStream;
    if (!pending) return;
    this.pendingStream = undefined;
    clearTimeout(this.streamTimer);
    const content = { name: pending.name, text: pending.chunks.join('') };
    void this.iopub.send(encode(this.signer, this.session, 'stream', content, pending.parent, [Buffer.from('stream')]));
  }

  /**
   * The kernel owns the process's handlers for stray errors (a rejection nobody awaited, a throw in a timer callback):
   * they are reported as an error in the output of the cell that ran last, and the kernel lives on. Handlers other
   * modules install are removed as they are added: tfjs-backend-wasm's emscripten module rethrows from both, which
   * would kill the kernel.
   */
  private ownStrayErrorHandlers(): void {
    const own: Record<StrayEvent, (e: unknown) => void> = {
      uncaughtException: (e) => this.reportStray('Uncaught exception', e),
      unhandledRejection: (e) => this.reportStray('Unhandled promise rejection', e),
    };
    for (const [event, handler] of Object.entries(own)) process.on(event, handler);
    process.on('newListener', (event: string | symbol, listener: unknown) => {
      if (!(event === 'uncaughtException' || event === 'unhandledRejection') || listener === own[event]) return;
      // 'newListener' fires before the listener is added; remove it once the installing code has finished.
      queueMicrotask(() => {
        process.removeListener(event, listener as () => void);
        logKernel(`removed a process '${event}' handler installed by a module`);
      });
    });
  }

  private reportStray(kind: string, e: unknown): void {
    if (!this.outputParent) {
      logKernel(`${kind}:`, e);
      return;
    }
    const { ename, evalue, traceback } = errorOutcome(e);
    this.publish('error', { ename, evalue, traceback: [`${kind}:`, ...traceback] }, this.outputParent);
  }

  /** Route the process's stdout/stderr and the display sink to IOPub, on behalf of the request that ran last. */
  private captureOutput(): void {
    const stream = (name: StreamName, fallback: typeof process.stdout.write) =>
      ((chunk: string | Uint8Array, encoding?: unknown, cb?: unknown) => {
        const done = typeof encoding === 'function' ? encoding : cb;
        if (!this.outputParent) return fallback(chunk as string, encoding as BufferEncoding, done as () => void);
        const text = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
        this.writeStream(name, text, this.outputParent);
        if (typeof done === 'function') done();
        return true;
      }) as typeof process.stdout.write;
    process.stdout.write = stream('stdout', process.stdout.write.bind(process.stdout));
    process.stderr.write = stream('stderr', realStderrWrite);

    setDisplaySink({
      send: (bundle, opts = {}) => {
        const content: Record<string, unknown> = { data: bundle, metadata: opts.metadata ?? {} };
        if (opts.displayId) content.transient = { display_id: opts.displayId };
        this.publish(opts.update ? 'update_display_data' : 'display_data', content, this.outputParent);
      },
      clear: (wait = false) => this.publish('clear_output', { wait }, this.outputParent),
    });
    tslabJupyter.lastWriteDisplayData = (content: Record<string, unknown>, update: boolean) => {
      const transient = content.transient as { display_id?: string } | undefined;
      if (!transient?.display_id) delete content.transient;
      this.publish(update ? 'update_display_data' : 'display_data', content, this.outputParent);
    };
  }

  private async shutdown(): Promise<void> {
    this.flushStream();
    await Promise.all([this.iopub.drain(), this.shellOut.drain(), this.controlOut.drain()]);
    this.engine.close();
    for (const s of Object.values(this.sockets)) s.close();
    process.exit(0);
  }

  interrupt(): void {
    this.engine.interrupt();
  }
}
