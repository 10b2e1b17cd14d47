// Reads UI message stream responses with the `ai` package's own parser and schemas, as
// useChat's default transport does, and says what it made of each (for the Python tests).
//
// stdin: a JSON list of {"name", "body"} (raw response bodies) or {"name", "messages"} (UI
// messages, as the server keeps them); stdout: a JSON list, one result per item:
// {"name", "chunks", "types", "schemaErrors", "streamErrors", "message", "messageValid"}.
import { readFileSync } from 'node:fs';
import {
  parseJsonEventStream,
  readUIMessageStream,
  uiMessageChunkSchema,
  validateUIMessages,
} from 'ai';

function streamOf(items) {
  return new ReadableStream({
    start(controller) {
      for (const item of items) controller.enqueue(item);
      controller.close();
    },
  });
}

async function validMessages(messages) {
  try {
    await validateUIMessages({ messages });
    return true;
  } catch (error) {
    return String(error.message).slice(0, 300);
  }
}

async function check({ name, body, messages: kept }) {
  if (kept !== undefined) return { name, messageValid: await validMessages(kept) };
  const chunks = [];
  const schemaErrors = [];
  // Exactly what DefaultChatTransport does with a response body (it throws on a failed chunk).
  const parsed = parseJsonEventStream({
    stream: new Response(body).body,
    schema: uiMessageChunkSchema,
  });
  for await (const result of parsed) {
    if (result.success) chunks.push(result.value);
    else schemaErrors.push(String(result.error.message).slice(0, 300));
  }
  // The message useChat builds from those chunks, with its own state machine.
  const streamErrors = [];
  let message = null;
  const messages = readUIMessageStream({
    stream: streamOf(chunks),
    onError: (error) => streamErrors.push(String(error?.message ?? error).slice(0, 300)),
  });
  for await (const snapshot of messages) message = snapshot;
  const messageValid = message === null ? null : await validMessages([message]);
  return {
    name,
    chunks: chunks.length,
    types: chunks.map((c) => c.type),
    schemaErrors,
    streamErrors,
    message,
    messageValid,
  };
}

const input = JSON.parse(readFileSync(0, 'utf8'));
const results = [];
for (const item of input) results.push(await check(item));
process.stdout.write(JSON.stringify(results));
