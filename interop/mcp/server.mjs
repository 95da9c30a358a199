// An MCP "Streamable HTTP" server (spec 2025-11-25) on the official TypeScript
// SDK, for eventsource's interop check (check.py, run by ./run).
//
//   node server.mjs [PORT]        PORT (or $PORT): 0 or none = a free one
//
// It listens on 127.0.0.1 only and prints the port as the first line of
// stdout. /mcp is the MCP endpoint: stateful sessions, the SDK's
// InMemoryEventStore (from its examples/) and retryInterval 200 ms, so every
// request stream starts with a priming event (an id and `retry: 200`) and can
// be resumed by GET with Last-Event-ID (SEP-1699).
//
// The tool `ticker` sends TICKS (10) progress notifications INTERVAL_MS (30)
// apart with the request's progressToken, closes the request's SSE stream
// (the transport's closeSSEStream, SEP-1699's server-side close) after the
// CLOSE_AFTER-th (3rd), and returns its result INTERVAL_MS after the last.
//
// GET /stats answers {"requests": [...], "closes": [...]}: every HTTP
// request to /mcp in order: {method, rpc (the JSON-RPC methods of a POST
// body; "response" for a client's response), session, lastEventId, status,
// at (ms since the epoch)}, and each closeSSEStream: {session, requestId,
// at}. POST /stats/reset clears both. SIGTERM / SIGINT close the sessions and exit.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest } from '@modelcontextprotocol/sdk/types.js';
import { InMemoryEventStore } from '@modelcontextprotocol/sdk/examples/shared/inMemoryEventStore.js';

const TICKS = Number(process.env.TICKS ?? 10);
const INTERVAL_MS = Number(process.env.INTERVAL_MS ?? 30);
const CLOSE_AFTER = Number(process.env.CLOSE_AFTER ?? 3);
const RETRY_INTERVAL_MS = 200;

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const sessions = new Map(); // session id -> transport
const requests = []; // the log /stats serves
const closes = []; // the SSE streams the tool closed: {session, requestId, at}

function makeServer() {
    const server = new McpServer({ name: 'eventsource-interop', version: '1.0.0' });
    server.registerTool(
        'ticker',
        { description: `Sends ${TICKS} progress notifications, closes the SSE stream after the ${CLOSE_AFTER}th, then answers.` },
        async extra => {
            const progressToken = extra._meta?.progressToken;
            for (let tick = 1; tick <= TICKS; tick++) {
                await sleep(INTERVAL_MS);
                if (progressToken !== undefined) {
                    await extra.sendNotification({
                        method: 'notifications/progress',
                        params: { progressToken, progress: tick, total: TICKS, message: `tick ${tick}` }
                    });
                }
                if (tick === CLOSE_AFTER) {
                    // Present only with an event store and a client of protocol
                    // version >= 2025-11-25 (the transport checks both).
                    if (extra.closeSSEStream) {
                        extra.closeSSEStream();
                        closes.push({ session: extra.sessionId, requestId: extra.requestId, at: Date.now() });
                        process.stderr.write(`[${extra.sessionId}] closed the SSE stream of request ${extra.requestId} after tick ${tick}\n`);
                    } else {
                        process.stderr.write(`[${extra.sessionId}] no closeSSEStream (no event store, or protocol version < 2025-11-25)\n`);
                    }
                }
            }
            // A gap before the result: the SDK's InMemoryEventStore orders a
            // replay by `${streamId}_${Date.now()}_${random}` ids, so two events
            // stored within one millisecond may be replayed in either order.
            await sleep(INTERVAL_MS);
            return { content: [{ type: 'text', text: `ticked ${TICKS} times` }] };
        }
    );
    return server;
}

function readBody(req) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        req.on('data', chunk => chunks.push(chunk));
        req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        req.on('error', reject);
    });
}

function sendJson(res, status, body) {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
}

const sessionNotFound = { jsonrpc: '2.0', error: { code: -32001, message: 'Session not found' }, id: null };

async function handleMcp(req, res) {
    const entry = {
        method: req.method,
        rpc: [],
        session: req.headers['mcp-session-id'] ?? null,
        lastEventId: req.headers['last-event-id'] ?? null,
        status: null,
        at: Date.now()
    };
    requests.push(entry);
    res.on('finish', () => (entry.status = res.statusCode));
    res.on('close', () => (entry.status ??= res.statusCode));
    let body;
    if (req.method === 'POST') {
        const text = await readBody(req);
        try {
            body = JSON.parse(text);
        } catch {
            body = undefined; // the transport answers 400 Parse error
        }
        const messages = Array.isArray(body) ? body : [body];
        entry.rpc = messages.map(m => (m && typeof m === 'object' ? (m.method ?? 'response') : 'invalid'));
    }
    const sessionId = entry.session;
    if (sessionId) {
        const transport = sessions.get(sessionId);
        if (!transport) {
            // An unknown or expired (deleted) session: what the SDK's own
            // examples answer; the transport itself answers 404 too.
            return sendJson(res, 404, sessionNotFound);
        }
        return transport.handleRequest(req, res, body);
    }
    if (req.method !== 'POST' || !isInitializeRequest(body)) {
        return sendJson(res, 400, {
            jsonrpc: '2.0',
            error: { code: -32000, message: 'Bad Request: No valid session ID provided' },
            id: null
        });
    }
    const transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        eventStore: new InMemoryEventStore(),
        retryInterval: RETRY_INTERVAL_MS,
        onsessioninitialized: id => sessions.set(id, transport)
    });
    transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
    };
    await makeServer().connect(transport);
    return transport.handleRequest(req, res, body);
}

const httpServer = http.createServer((req, res) => {
    const path = new URL(req.url, 'http://127.0.0.1').pathname;
    if (path === '/stats' && req.method === 'GET') return sendJson(res, 200, { requests, closes });
    if (path === '/stats/reset' && req.method === 'POST') {
        requests.length = 0;
        closes.length = 0;
        return sendJson(res, 200, { requests, closes });
    }
    if (path !== '/mcp') return sendJson(res, 404, { error: 'not found' });
    handleMcp(req, res).catch(error => {
        process.stderr.write(`error: ${error?.stack ?? error}\n`);
        if (!res.headersSent) sendJson(res, 500, { error: String(error) });
        else res.destroy();
    });
});

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
httpServer.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${httpServer.address().port}\n`);
});

async function shutdown() {
    for (const transport of sessions.values()) await transport.close().catch(() => {});
    httpServer.closeAllConnections();
    httpServer.close(() => process.exit(0));
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
