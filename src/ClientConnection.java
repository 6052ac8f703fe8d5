import java.io.IOException;
import java.net.InetAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * One client connection, served start to end on its own virtual thread. This is the proxy's
 * main loop, and it reads like the algorithm:
 *
 * <pre>
 *   read the request head      (client_header_timeout, limits: 414 / 431)
 *   route it to a group        (Routes: host, then longest path prefix; 301 / 404 / return)
 *   decide its body framing    (RFC 9112 6.3; 400 / 501 / 413)
 *   forward it                 (ProxyPass: choose an upstream, send the rewritten head and
 *                               stream the body, read the response head, send it on and
 *                               stream its body; read_timeout: 504, garbage: 502)
 *   log it, decide keep-alive, and wait for the next request (IdleConnections)
 * </pre>
 *
 * Every failure is an {@link HttpError}, answered in one place ({@link #answer}): with its
 * status if the response has not started, otherwise by closing the connection so that a
 * truncated response can never look complete. What the answer depends on (has the
 * response started? was the body read?) is in the request's {@link Exchange}.
 */
final class ClientConnection {
    private static final byte[] CONTINUE = "HTTP/1.1 100 Continue\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1);

    private final Config config;
    private final Map<String, Upstreams> groups; // each upstream group by name (Routes says which)
    private final BufferPool buffers;
    private final IdleConnections idle;
    private final Log log;
    private final Wire client;
    private final Connections connections; // its max_connections slot, and whether the proxy is stopping
    private final HeadReader.Limits requestLimits;
    private final HttpsRedirect redirect; // redirect_https on a plain listener, else null

    private volatile Thread thread; // the thread serving it now, for abort
    private Exchange ex;          // the request in progress, or null between requests
    private boolean reset;        // end with RST: a response was cut short

    ClientConnection(Config config, Map<String, Upstreams> groups, BufferPool buffers, IdleConnections idle, Log log,
                     Wire client, Connections connections, HttpsRedirect redirect) {
        this.config = config;
        this.groups = groups;
        this.buffers = buffers;
        this.idle = idle;
        this.log = log;
        this.client = client;
        this.connections = connections;
        this.requestLimits = HeadReader.Limits.request(config);
        this.redirect = redirect;
    }

    /**
     * Serves requests until the connection closes or falls idle. An idle keep-alive
     * connection waits for its next request in {@link IdleConnections}, without a thread;
     * when that request begins, {@link #resume} runs this loop again on a new thread.
     */
    void serve() {
        thread = Thread.currentThread();
        boolean idleNow = false;
        try {
            for (boolean open = true; open; ) {
                // For the first request this counts from the accept (a client that connects
                // and sends nothing is closed after it); for a later one, from its first byte.
                client.readDeadline(config.clientHeaderTimeout());
                open = exchange() && !connections.draining();
                if (open && !client.in.hasRemaining()) { // nothing pipelined behind it: idle
                    idleNow = idle.await(this, client); // keepalive_timeout runs there
                    if (idleNow) return;
                }
            }
        } catch (IOException e) {
            // the client went away as the connection fell idle
        } finally {
            if (!idleNow) close();
        }
    }

    /** One request and its response, logged; returns whether the connection stays open. */
    private boolean exchange() {
        ex = new Exchange(config);
        boolean open;
        connections.reading(); // stub_status's Reading, until the head is in
        try {
            open = serveOne();
        } catch (HttpError e) {
            open = answer(e);
        } catch (RuntimeException | Error e) {
            // A bug, or the JVM out of something: logged here, once, with its stack; the connection ends.
            log.unexpected("serving a request" + ex.context(client), e);
            if (!ex.responseStarted) ex.status = 500;
            open = false;
        }
        connections.exchangeEnded(ex.requestLine != null && !ex.requestLine.isEmpty());
        reset = ex.reset;
        if (ex.requestLine != null) log.access(ex.logEntry(client));
        ex = null; // an idle connection holds nothing of the last exchange
        return open;
    }

    /** Called by {@link IdleConnections} when the next request begins: serve it on a new thread. */
    void resume() {
        startOrClose(() -> {
            if (blockingAgain()) serve();
            else close();
        });
    }

    /** Called by {@link IdleConnections} when keepalive_timeout ran out, or at shutdown. */
    void closeIdle() {
        startOrClose(() -> { // a lingering close may wait: not on the selector's thread
            blockingAgain();
            close();
        });
    }

    /**
     * Starts a thread for this idle connection. If none can start (out of memory, say), the
     * connection is closed at once, so it can't linger unserved and hold a max_connections
     * place; the failure goes on to the selector's thread, which reports it.
     */
    private void startOrClose(Runnable task) {
        try {
            Thread.ofVirtual().start(task);
        } catch (RuntimeException | Error e) {
            closeIdleNow();
            throw e;
        }
    }

    /**
     * Called by {@link IdleConnections} to make room under max_connections, or when no thread
     * can start: closed at once, no lingering (it is idle: nothing unread, nothing owed).
     */
    void closeIdleNow() {
        try {
            client.close();
        } finally {
            ended();
        }
    }

    /**
     * The channel waited in non-blocking mode: back to blocking, which every read of the
     * loop (and of the lingering close) expects. If it can't be, it is closed at once.
     */
    private boolean blockingAgain() {
        try {
            client.channel.configureBlocking(true);
            return true;
        } catch (IOException | RuntimeException e) {
            client.close();
            return false;
        }
    }

    Wire wire() {
        return client;
    }

    private void close() {
        try {
            if (reset) client.reset();
            else client.lingeringClose(Config.LINGERING_TIME);
        } finally {
            ended();
        }
    }

    private void ended() {
        if (client.tls != null) client.tls.free(); // closed: TLS's buffers back to the pool
        connections.ended(this);
    }

    /** At the end of shutdown_timeout: closes the connection under whatever it is doing. */
    void abort() {
        client.close(); // its thread's read or write of the client fails, and it ends as on any failure;
        Thread t = thread; // one waiting on the upstream (a slow response) would wait out read_timeout:
        if (t != null) t.interrupt(); // interrupted, the channel it waits on closes (NIO), and it ends too
    }

    /** Serves one request; returns whether the client connection stays open. */
    private boolean serveOne() throws HttpError {
        byte[] head;
        try {
            head = HeadReader.readHead(client, requestLimits);
        } catch (IOException e) {
            String tlsFailure = client.tls == null ? null : client.tls.failure(e);
            if (tlsFailure != null) log.info(tlsFailure + ex.context(client)); // no request: no access line
            throw HttpError.clientGone("reading request head: " + e.getMessage(), e);
        } catch (HttpError e) {
            ex.requestLine = ""; // logged as "-": nginx, too, logs the requests it rejects
            throw e;
        }
        if (head == null) return false; // closed between requests
        ex.requestLine = firstLine(head);
        connections.writing(); // a request: stub_status's Writing until its exchange ends
        HttpParser.Request req = HttpParser.parseRequest(head, config.maxHeaderFields());
        ex.request = req;
        Body body = HttpParser.requestBody(req);
        ex.requestBodyDone = body.isEmpty();
        ex.clientKeepAlive = req.http11() && !req.headers().hasToken("Connection", "close");
        InetAddress peer = client.remote.getAddress(); // whose request it is, before anything answers it
        RealIp realIp = config.setRealIpFrom();
        ex.remoteAddr = realIp.trusts(peer) ? realIp.client(peer, req.headers().all(config.realIpHeader())) : peer;
        switch (route(req)) {
            case Routes.Route r when r.answer() == null -> req = ex.request = routed(req, r);
            case Routes.Route r -> {
                ex.route = r;
                return answerItself(req, r.answer());
            }
            case Routes.Redirect r -> { return answerItself(req, new Routes.Return(301, r.location())); }
            case Routes.NotFound n -> throw new HttpError(404, "no route for this host and path", false);
        }
        long maxBody = ex.settings.clientMaxBodySize();
        if (body instanceof Body.Length l && maxBody > 0 && l.bytes() > maxBody) {
            throw HttpError.bad(413, "Content-Length over client_max_body_size"); // before reading any of it
        }
        if (redirect != null) return redirect(req, body);
        expectContinue(req, body);
        String upgrade = upgradeRequested(req);
        return new ProxyPass(config, client, buffers, log, connections, ex).forward(req, body, upgrade);
    }

    /**
     * Which route the request takes (Routes.match): without route.* keys, the default group.
     * While routes are in use, a path the app could read as another route's is refused,
     * since routes compare paths as they came (and send them on so): one with a dot-segment
     * ("/public/../admin/"), or one that chooses another route once read as the app reads it
     * ("/%61dmin/", "//admin/" or "/admin%2Fx" where "/admin/" is routed: Routes.asRead).
     */
    private Routes.Decision route(HttpParser.Request req) throws HttpError {
        Routes routes = config.routes();
        if (routes.isEmpty()) return routes.fallback();
        String asRead = Routes.asRead(req.target());
        if (Routes.hasDotSegment(asRead)) throw HttpError.bad(400, "dot-segment in the path of a routed request");
        Routes.Decision decision = routes.match(req.host(), req.target());
        if (!asRead.equals(req.target()) && !decision.equals(routes.match(req.host(), asRead))) {
            throw HttpError.bad(400, "the path of a routed request reads as another route's once decoded");
        }
        return decision;
    }

    /** The request as its route sends it upstream: the route's settings and group, its target (strip_prefix). */
    private HttpParser.Request routed(HttpParser.Request req, Routes.Route r) {
        ex.route = r;
        ex.settings = r.settings();
        ex.upstreams = groups.get(r.group());
        String target = r.target(req.target());
        return target.equals(req.target()) ? req
                : new HttpParser.Request(req.method(), target, req.http11(), req.headers(), req.host());
    }

    /**
     * A route's fixed answer (route.NAME.return, nginx's return) or the 301 to a prefix's
     * "/": a redirect's Location, any other status's text as the body. Like any answer
     * before the body was read, it closes a connection whose request has a body.
     */
    private boolean answerItself(HttpParser.Request req, Routes.Return answer) throws HttpError {
        ex.status = answer.status();
        boolean head = req.method().equals("HEAD");
        boolean close = !ex.requestBodyDone || !ex.clientKeepAlive || connections.draining();
        String text = Forwarding.expand(answer.text(), name -> switch (name) {
            case "$request_uri" -> req.target();
            case "$uri" -> req.target().indexOf('?') < 0 ? req.target() : req.target().substring(0, req.target().indexOf('?'));
            case "$host" -> req.host() == null ? "" : Routes.host(req.host());
            case "$scheme" -> client.tls == null ? "http" : "https";
            default -> name;
        });
        byte[] response = Routes.response(answer.status(), text, close, head);
        writeToClient(client, response);
        ex.responseStarted = true;
        if (!head) ex.bodyBytesSent = Routes.bodyLength(answer.status(), text);
        return !close;
    }

    /** redirect_https: the answer is a redirect to the TLS listener; a body, unread, ends the connection. */
    private boolean redirect(HttpParser.Request req, Body body) throws HttpError {
        boolean keepAlive = req.http11() && !req.headers().hasToken("Connection", "close") && body.isEmpty();
        ex.status = HttpsRedirect.status(req);
        writeToClient(client, redirect.response(req, client, keepAlive, config.addHeader()));
        ex.responseStarted = true;
        return keepAlive;
    }

    /**
     * Expect: 100-continue (RFC 9110 10.1.1): like nginx, the proxy answers it itself when
     * it is ready for the body, and does not pass the expectation on. Any other expectation
     * is 417.
     */
    private void expectContinue(HttpParser.Request req, Body body) throws HttpError {
        if (!req.headers().has("Expect")) return;
        List<String> expect = req.headers().tokens("Expect");
        req.headers().remove("Expect");
        if (!req.http11()) return; // an HTTP/1.0 client can't mean it: ignore (10.1.1)
        if (expect.isEmpty() || !expect.stream().allMatch(e -> e.equalsIgnoreCase("100-continue"))) {
            throw new HttpError(417, "unsupported expectation", true);
        }
        if (!body.isEmpty() && !client.in.hasRemaining()) writeToClient(client, CONTINUE);
    }

    /** The Upgrade to pass on, or null: only with "Connection: upgrade", only in HTTP/1.1. */
    private static String upgradeRequested(HttpParser.Request req) {
        String upgrade = req.headers().first("Upgrade");
        if (upgrade == null || !req.http11() || !req.headers().hasToken("Connection", "upgrade")) return null;
        if (upgrade.equalsIgnoreCase("h2c")) return null; // HTTP/2 over cleartext: served as HTTP/1.1 instead
        return upgrade;
    }

    /**
     * The one place failures are answered. Before the response has started, the client
     * gets the status; afterwards it can only be closed. Answering before the request body
     * was read also closes: the unread body would otherwise be taken for the next request.
     */
    private boolean answer(HttpError e) {
        boolean close = e.close || !ex.requestBodyDone || ex.request == null || !ex.clientKeepAlive || connections.draining();
        // A client that goes away between requests (a reset while idle) is no event worth a line.
        if (ex.requestLine != null) logFailure(e);
        if (e.clientGone != 0 && !ex.responseStarted) ex.status = e.clientGone; // for the access log only: 499
        if (e.status == 0 || ex.responseStarted) return false;
        ex.status = e.status;
        boolean head = ex.request != null && ex.request.method().equals("HEAD");
        try {
            client.write(Forwarding.errorResponse(e.status, close, head));
            if (!head) ex.bodyBytesSent = Forwarding.errorBody(e.status).length(); // $body_bytes_sent, as nginx counts its own
        } catch (IOException ignored) {
            return false;
        }
        return !close;
    }

    /** Writes to the client; failing, the client is gone (499 in the access log). */
    static void writeToClient(Wire client, byte[] bytes) throws HttpError {
        try {
            client.write(bytes);
        } catch (IOException e) {
            throw HttpError.clientGone("writing to client: " + e.getMessage(), e);
        }
    }

    /**
     * The error log's line for an exchange that failed. What the client did (a bad request, a
     * client gone) is info, as in nginx, so that no client can fill the log at the default
     * level; what the upstream did (502, 504, a response cut short) is error.
     */
    private void logFailure(HttpError e) {
        boolean clients = e.clientGone != 0 || e.status > 0 && (e.status < 500 || e.status == 501 || e.status == 505);
        Log.Level level = clients ? Log.Level.INFO : Log.Level.ERROR;
        if (!log.enabled(level)) return;
        String what = e.clientGone != 0 ? "client went away" : e.status == 0 ? "response cut short"
                : e.status + " " + HttpError.reasonPhrase(e.status);
        log.log(level, what + ": " + e.getMessage() + ex.context(client));
    }

    private static String firstLine(byte[] head) {
        int n = 0;
        while (head[n] != '\r') n++;
        return new String(head, 0, n, StandardCharsets.ISO_8859_1);
    }
}
