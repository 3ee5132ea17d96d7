/**
 * The Jupyter wire protocol (messaging spec 5.3): how a message is split into ZeroMQ frames and signed.
 *
 *   [identity..., '<IDS|MSG>', hmac, header, parent_header, metadata, content, buffer...]
 *
 * The signature is an HMAC of the four JSON frames with the connection file's key; an empty key means no signing.
 */
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

export const PROTOCOL_VERSION = '5.3';
const DELIMITER = Buffer.from('<IDS|MSG>');

export interface Header {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
}

export interface Message<C = Record<string, unknown>> {
  identities: Buffer[];
  header: Header;
  parent_header: Partial<Header>;
  metadata: Record<string, unknown>;
  content: C;
  buffers: Buffer[];
}

export class Signer {
  constructor(
    private readonly key: string,
    private readonly scheme = 'hmac-sha256',
  ) {}

  sign(frames: readonly (string | Buffer)[]): string {
    if (!this.key) return '';
    const algorithm = this.scheme.replace(/^hmac-/, '');
    const hmac = createHmac(algorithm, this.key);
    for (const f of frames) hmac.update(f);
    return hmac.digest('hex');
  }

  verify(signature: string, frames: readonly Buffer[]): boolean {
    if (!this.key) return true;
    const want = Buffer.from(this.sign(frames));
    const got = Buffer.from(signature);
    return want.length === got.length && timingSafeEqual(want, got);
  }
}

/** Parse the frames of one message; throws when the delimiter is missing or the signature is wrong. */
export function decode(frames: Buffer[], signer: Signer): Message {
  const at = frames.findIndex((f) => f.equals(DELIMITER));
  if (at < 0) throw new Error('jupyter message without the <IDS|MSG> delimiter');
  const signature = frames[at + 1]?.toString() ?? '';
  const parts = frames.slice(at + 2, at + 6);
  if (parts.length < 4) throw new Error(`jupyter message has ${parts.length} of its 4 JSON frames`);
  if (!signer.verify(signature, parts)) throw new Error('jupyter message with an invalid signature');
  const [header, parent, metadata, content] = parts.map((p) => JSON.parse(p.toString() || '{}'));
  return {
    identities: frames.slice(0, at),
    header,
    parent_header: parent,
    metadata,
    content,
    buffers: frames.slice(at + 6),
  };
}

/** Build the frames of a message of `msgType` sent in reply to (or on behalf of) `parent`. */
export function encode(
  signer: Signer,
  session: string,
  msgType: string,
  content: unknown,
  parent: Message<unknown> | undefined,
  identities: Buffer[],
  metadata: Record<string, unknown> = {},
): (Buffer | string)[] {
  const header: Header = {
    msg_id: randomUUID(),
    msg_type: msgType,
    session,
    username: parent?.header.username ?? 'kernel',
    date: new Date().toISOString(),
    version: PROTOCOL_VERSION,
  };
  const json = [header, parent?.header ?? {}, metadata, content].map((x) => JSON.stringify(x));
  return [...identities, DELIMITER, signer.sign(json), ...json];
}
