// A chat page on the AI SDK: useChat with its default transport, against the FastAPI endpoint.
//
// - `POST /api/chat` streams each reply as UI message stream chunks; useChat builds the
//   messages from them: text, reasoning, tool parts through their states, data parts.
// - Reload mid-reply: the page asks the server for the chat's messages (GET /api/chat/{id}),
//   then useChat({resume: true}) reconnects (GET /api/chat/{id}/stream), which replays the
//   reply from its start.
// - Stop: useChat's stop() aborts the fetch, which the server's generation outlives by design;
//   DELETE /api/chat/{id}/stream ends the generation, and with it the provider's stream.
// - `?api=agent` talks to the LangGraph agent (POST /api/agent) instead; it does not resume.
import { useChat } from '@ai-sdk/react';
import { DefaultChatTransport } from 'ai';
import { StrictMode, useEffect, useMemo, useRef, useState } from 'react';
import { createRoot } from 'react-dom/client';

const params = new URLSearchParams(window.location.search);
const API = params.get('api') === 'agent' ? '/api/agent' : '/api/chat';
const RESUMABLE = API === '/api/chat';
const TOKEN_KEY = 'chat-ui-token';

// The chat's id lives in the URL, so that a reload finds the same chat.
function chatId() {
  let id = params.get('chat');
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    params.set('chat', id);
    window.history.replaceState(null, '', `?${params}`);
  }
  return id;
}

// With RELAY_CLIENT_TOKENS set on the server, every API call needs a bearer token: the page
// sends the one typed in (kept for this tab only) through the transport's `headers`.
function authHeaders() {
  const token = window.sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// An HTTP error before the stream reaches useChat as an Error whose message is the response
// body: the server's error contract, `{"error": {"code", "message", "request_id"}}`.
function errorText(error) {
  try {
    const body = JSON.parse(error.message);
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    // not JSON: an error event's text, or the browser's own
  }
  return error.message;
}

function ToolCard({ part, progress }) {
  const name = part.type.slice('tool-'.length);
  return (
    <div className="tool" data-tool={name} data-state={part.state} data-call={part.toolCallId}>
      <span className="name">{name}</span>
      <span className="state">{part.state}</span>
      {progress && <div className="progress">{progress.data.status}</div>}
      <pre className="input">{JSON.stringify(part.input ?? null)}</pre>
      {part.state === 'output-available' && (
        <pre className="output">{JSON.stringify(part.output, null, 1)}</pre>
      )}
      {part.state === 'output-error' && <div className="error">{part.errorText}</div>}
    </div>
  );
}

function Message({ message }) {
  const progressOf = (callId) =>
    message.parts.find((p) => p.type === 'data-tool-progress' && p.data?.toolCallId === callId);
  return (
    <div className={`message ${message.role}`} data-role={message.role} data-id={message.id}>
      {message.parts.map((part, index) => {
        if (part.type === 'text') return <div key={index} className="text">{part.text}</div>;
        if (part.type === 'reasoning') {
          return <div key={index} className="reasoning" data-state={part.state}>{part.text}</div>;
        }
        if (part.type === 'step-start') return index > 0 ? <hr key={index} className="step" /> : null;
        if (part.type.startsWith('tool-')) {
          return <ToolCard key={index} part={part} progress={progressOf(part.toolCallId)} />;
        }
        return null; // data parts are shown with the tool they belong to
      })}
    </div>
  );
}

function Chat({ id, initialMessages }) {
  const [provider, setProvider] = useState('openai');
  const [tools, setTools] = useState(true);
  const [reasoning, setReasoning] = useState(false);
  const [input, setInput] = useState('');
  const [stopped, setStopped] = useState(false);
  // The transport reads these when it sends, so it is made once.
  const options = useRef({});
  options.current = { provider, reasoning, ...(tools ? {} : { tools: [] }) };
  const transport = useMemo(
    () =>
      new DefaultChatTransport({
        api: API,
        headers: () => authHeaders(),
        body: () => ({ ...options.current }),
      }),
    [],
  );
  const { messages, sendMessage, status, error, stop } = useChat({
    id,
    messages: initialMessages,
    transport,
    resume: RESUMABLE,
  });
  const busy = status === 'submitted' || status === 'streaming';

  async function onSubmit(event) {
    event.preventDefault();
    if (!input.trim() || busy) return;
    setStopped(false);
    const text = input;
    setInput('');
    await sendMessage({ text });
  }

  async function onStop() {
    setStopped(true);
    const ending = RESUMABLE
      ? fetch(`${API}/${encodeURIComponent(id)}/stream`, { method: 'DELETE', headers: authHeaders() })
      : Promise.resolve();
    await Promise.all([ending, stop()]);
  }

  const last = messages[messages.length - 1];
  const usage = last && last.role === 'assistant' && last.metadata && last.metadata.usage;
  const state = stopped && !busy && !error ? 'stopped' : status;
  const describe = {
    submitted: 'Waiting for the reply...',
    streaming: 'Streaming...',
    ready: usage ? `Done: ${usage.totalTokens} tokens.` : 'Ready.',
    error: 'Failed.',
    stopped: 'Stopped.',
  };

  return (
    <main>
      <header>
        <h1>Chat</h1>
        <label>
          Provider{' '}
          <select id="provider" value={provider} onChange={(e) => setProvider(e.target.value)}>
            <option value="openai">OpenAI</option>
            <option value="anthropic">Anthropic</option>
          </select>
        </label>
        <label>
          <input id="tools" type="checkbox" checked={tools} onChange={(e) => setTools(e.target.checked)} />{' '}
          Tools
        </label>
        <label>
          <input
            id="reasoning"
            type="checkbox"
            checked={reasoning}
            onChange={(e) => setReasoning(e.target.checked)}
          />{' '}
          Reasoning
        </label>
        <label>
          Token{' '}
          <input
            id="token"
            type="password"
            size="12"
            defaultValue={window.sessionStorage.getItem(TOKEN_KEY) || ''}
            onChange={(e) => window.sessionStorage.setItem(TOKEN_KEY, e.target.value)}
          />
        </label>
      </header>
      <div id="messages">
        {messages.map((message) => (
          <Message key={message.id} message={message} />
        ))}
      </div>
      <form onSubmit={onSubmit}>
        <textarea
          id="message"
          value={input}
          placeholder="Ask something, e.g. Look up Paris and Tokyo in the city table."
          onChange={(e) => setInput(e.target.value)}
        />
        <button id="send" type="submit" disabled={busy || !input.trim()}>
          Send
        </button>
        <button id="stop" type="button" className="secondary" disabled={!busy} onClick={onStop}>
          Stop
        </button>
      </form>
      <p id="status" data-state={state}>
        {describe[state]}
      </p>
      <div id="error" role="alert" hidden={!error}>
        {error ? errorText(error) : ''}
      </div>
    </main>
  );
}

function App() {
  const id = useMemo(chatId, []);
  const [initial, setInitial] = useState(null);
  useEffect(() => {
    // What came before the reply being resumed (if any) comes from the server.
    fetch(`/api/chat/${encodeURIComponent(id)}`, { headers: authHeaders() })
      .then((response) => (response.ok ? response.json() : { messages: [] }))
      .then((body) => setInitial(body.messages))
      .catch(() => setInitial([]));
  }, [id]);
  if (initial === null) {
    return (
      <main>
        <p id="status" data-state="loading">
          Loading...
        </p>
      </main>
    );
  }
  return <Chat id={id} initialMessages={initial} />;
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
