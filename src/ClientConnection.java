import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * One client connection, served start to end on its own virtual thread. This is the proxy's
 * main loop, and it reads like the algorithm:
 *
 * <pre>
 *   read the request head      (client_header_timeout, limits: 414 / 431)
 *   route it to a group        (Routes: host, then longest path prefix; 301 / 404 / return)
 *   decide its body framing    (RFC 9112 6.3; 400 / 501 / 413)
 *   choose an upstream         (weighted round-robin, pooled connection or a new one)
 *   rewrite and send the head, stream the body
 *   read the response head     (read_timeout: 504; garbage: 502)
 *   rewrite and send it, stream the body
 *   decide keep-alive on both sides, and go round again
 * </pre>
 *
 * Every failure is an {@link HttpError}, answered in one place ({@link #answer}): with its
 * status if the response has not started, otherwise by closing the connection so that a
 * truncated response can never look complete.
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

    // The exchange in progress, for the error handler and the access log.
    private String requestLine;
    private HttpParser.Request request;
    private boolean requestBodyDone;
    private boolean clientKeepAlive;  // what the client asked for: HTTP/1.1 without "Connection: close"
    private boolean responseStarted;
    private boolean interimSent;      // a 1xx went to the client: the request can't go to another server
    private Upload upload;            // the request body, while another thread sends it (full duplex)
    private InetAddress remoteAddr; // the client's address: the peer's, or behind trusted proxies (RealIp)
    private boolean reset;            // end with RST: a response was cut short
    private int status;
    private long bodyBytesSent;       // what went on the wire: compressed, if it was (Gzip)
    private String gzipRatio;         // $gzip_ratio, or null
    private long started;             // System.nanoTime() as the exchange began: $request_time
    private List<LogFormat.Attempt> attempts; // the upstream servers tried, or null: $upstream_*
    private String requestId;         // $request_id, made when first used
    private Routes.Route route;       // the request's route: its group, and its settings (route.NAME.*)
    private Config settings;          // config, or the route's overrides of it: headers, read_timeout, client_max_body_size
    private Upstreams upstreams;      // the route's group

    ClientConnection(Config config, Map<String, Upstreams> groups, BufferPool buffers, IdleConnections idle, Log log,
                     Wire client, Connections connections, HttpsRedirect redirect) {
        this.config = config;
        this.groups = groups;
        this.settings = config;
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
        requestLine = null;
        request = null;
        requestBodyDone = clientKeepAlive = responseStarted = interimSent = false;
        upload = null;
        remoteAddr = null;
        status = 0;
        bodyBytesSent = 0;
        gzipRatio = null;
        started = System.nanoTime();
        route = null;
        settings = config;
        boolean open;
        connections.reading(); // stub_status's Reading, until the head is in
        try {
            open = serveOne();
        } catch (HttpError e) {
            open = answer(e);
        } catch (RuntimeException | Error e) {
            // A bug, or the JVM out of something: logged here, once, with its stack; the connection ends.
            log.unexpected("serving a request" + context(), e);
            if (!responseStarted) status = 500;
            open = false;
        }
        connections.exchangeEnded(requestLine != null && !requestLine.isEmpty());
        if (requestLine != null) {
            InetSocketAddress remote = remoteAddr == null || remoteAddr == client.remote.getAddress() ? client.remote
                    : new InetSocketAddress(remoteAddr, client.remote.getPort()); // the client behind a trusted proxy
            log.access(new LogFormat.Entry(remote, requestLine, request, status, bodyBytesSent,
                    System.nanoTime() - started, attempts, this::requestId, gzipRatio,
                    route == null ? null : route.name(), route == null ? null : route.group(), client.tls));
        }
        request = null; // an idle connection holds nothing of the last exchange
        requestLine = null;
        attempts = null;
        requestId = null;
        return open;
    }

    /** Called by {@link IdleConnections} when the next request begins: serve it on a new thread. */
    void resume() {
        Thread.ofVirtual().start(() -> {
            if (blockingAgain()) serve();
            else close();
        });
    }

    /** Called by {@link IdleConnections} when keepalive_timeout ran out, or at shutdown. */
    void closeIdle() {
        Thread.ofVirtual().start(() -> { // a lingering close may wait: not on the selector's thread
            blockingAgain();
            close();
        });
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
            if (client.tls != null) client.tls.free(); // closed: TLS's buffers back to the pool
            connections.ended(this);
        }
    }

    /** At the end of shutdown_timeout: closes the connection under whatever it is doing. */
    void abort() {
        client.close(); // its thread's read or write fails, and it ends as on any failure
    }

    /** Serves one request; returns whether the client connection stays open. */
    private boolean serveOne() throws HttpError {
        byte[] head;
        try {
            head = HeadReader.readHead(client, requestLimits);
        } catch (IOException e) {
            if (e instanceof TlsChannel.HandshakeFailed) log.info(e.getMessage() + context()); // no request: no access line
            throw HttpError.clientGone("reading request head: " + e.getMessage(), e);
        } catch (HttpError e) {
            requestLine = ""; // logged as "-": nginx, too, logs the requests it rejects
            throw e;
        }
        if (head == null) return false; // closed between requests
        requestLine = firstLine(head);
        connections.writing(); // a request: stub_status's Writing until its exchange ends
        HttpParser.Request req = HttpParser.parseRequest(head, config.maxHeaderFields());
        request = req;
        Body body = HttpParser.requestBody(req);
        requestBodyDone = body.isEmpty();
        clientKeepAlive = req.http11() && !req.headers().hasToken("Connection", "close");
        switch (route(req)) {
            case Routes.Route r when r.answer() == null -> req = request = routed(req, r);
            case Routes.Route r -> {
                route = r;
                return answerItself(req, r.answer());
            }
            case Routes.Redirect r -> { return answerItself(req, new Routes.Return(301, r.location())); }
            case Routes.NotFound n -> throw new HttpError(404, "no route for this host and path", false);
        }
        long maxBody = settings.clientMaxBodySize();
        if (body instanceof Body.Length l && maxBody > 0 && l.bytes() > maxBody) {
            throw HttpError.bad(413, "Content-Length over client_max_body_size"); // before reading any of it
        }
        if (redirect != null) return redirect(req, body);
        expectContinue(req, body);
        String upgrade = upgradeRequested(req);

        InetAddress peer = client.remote.getAddress();
        RealIp realIp = config.setRealIpFrom();
        remoteAddr = realIp.trusts(peer) ? realIp.client(peer, req.headers().all(config.realIpHeader())) : peer;
        NextUpstream next = new NextUpstream(upstreams, upstreams.config(), req, body);
        byte[] upstreamHead = null; // made once: it rewrites the request's headers in place
        while (true) {
            Upstreams.Connection up = connect(next);
            int upstreamStatus = 0; // what this server answered, for the access log; 0 = nothing (yet)
            try {
                if (upstreamHead == null) {
                    upstreamHead = Forwarding.requestHead(req, body, client.remote, remoteAddr, settings, up.peer().server,
                            upgrade, upstreams.config().upstreamKeepalive() == 0, this::requestId,
                            client.tls == null ? "http" : "https");
                }
                up.wire().readTimeout(settings.readTimeout()); // the route's, on a pooled connection too
                try {
                    sendRequest(up, body, upstreamHead);
                    HttpParser.Response resp = readResponseHead(up, req);
                    upstreamStatus = resp.status();
                    return respond(req, up, resp, clientKeepAlive, upgrade);
                } finally {
                    if (upload != null) endUpload(up);
                }
            } catch (HttpError e) {
                up.close(); // a bad request body (400, 413), a bad response: it can't be reused
                if (upstreamStatus == 0 && e.status >= 500) upstreamStatus = e.status; // a bad head: 502, as nginx logs it
                throw e;
            } catch (RuntimeException | Error e) {
                up.close(); // e.g. out of direct memory: never leak the connection, whatever went wrong
                throw e;
            } catch (IOException e) {
                // Nothing of the response has reached the client: the request may go on.
                up.close();
                boolean timeout = e instanceof Wire.Timeout;
                upstreamStatus = timeout ? 504 : 502;
                if (upload != null) throw uploadFailed(up, e); // a body that went out is not sent again
                if (next.retryStale(up)) continue; // the server had closed it while idle
                String why = "upstream " + up.peer().server.hostPort() + (timeout ? " timed out: " : " failed: ") + e.getMessage();
                upstreams.failed(up.peer(), why);
                if (!interimSent && next.maySendAgain()) {
                    log.error(why + ", trying the next server" + context());
                    continue;
                }
                throw new HttpError(timeout ? 504 : 502, why, false);
            } finally {
                tried(up.peer(), upstreamStatus, up.started());
            }
        }
    }

    /**
     * Which route the request takes (Routes.match): without route.* keys, the default group.
     * While routes are in use, a path with a dot-segment is refused: routes compare paths as
     * they came, and the app might resolve "/public/../admin/" to a path another route guards.
     */
    private Routes.Decision route(HttpParser.Request req) throws HttpError {
        Routes routes = config.routes();
        if (routes.isEmpty()) return routes.fallback();
        if (Routes.hasDotSegment(req.target())) throw HttpError.bad(400, "dot-segment in the path of a routed request");
        return routes.match(req.host(), req.target());
    }

    /** The request as its route sends it upstream: the route's settings and group, its target (strip_prefix). */
    private HttpParser.Request routed(HttpParser.Request req, Routes.Route r) {
        route = r;
        settings = r.settings();
        upstreams = groups.get(r.group());
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
        status = answer.status();
        boolean head = req.method().equals("HEAD");
        boolean close = !requestBodyDone || !clientKeepAlive || connections.draining();
        String text = Forwarding.expand(answer.text(), name -> switch (name) {
            case "$request_uri" -> req.target();
            case "$uri" -> req.target().indexOf('?') < 0 ? req.target() : req.target().substring(0, req.target().indexOf('?'));
            case "$host" -> req.host() == null ? "" : Routes.host(req.host());
            case "$scheme" -> client.tls == null ? "http" : "https";
            default -> name;
        });
        byte[] response = Routes.response(answer.status(), text, close, head);
        writeToClient(response);
        responseStarted = true;
        if (!head) bodyBytesSent = Routes.bodyLength(answer.status(), text);
        return !close;
    }

    /** redirect_https: the answer is a redirect to the TLS listener; a body, unread, ends the connection. */
    private boolean redirect(HttpParser.Request req, Body body) throws HttpError {
        boolean keepAlive = req.http11() && !req.headers().hasToken("Connection", "close") && body.isEmpty();
        status = HttpsRedirect.status(req);
        writeToClient(redirect.response(req, client, keepAlive, config.addHeader()));
        responseStarted = true;
        return keepAlive;
    }

    /** Connects to the next server; one that can't be reached counts against it, and the next is tried. */
    private Upstreams.Connection connect(NextUpstream next) throws HttpError {
        HttpError last = null;
        for (Upstreams.Peer peer; (peer = next.server()) != null; ) {
            if (last != null) log.error(last.getMessage() + ", trying the next server" + context()); // answer() logs the last
            long since = System.nanoTime();
            try {
                return upstreams.connect(peer, next.pooled(), next.replayable());
            } catch (IOException e) {
                boolean timeout = e instanceof Wire.Timeout;
                tried(peer, timeout ? 504 : 502, since);
                last = new HttpError(timeout ? 504 : 502, timeout ? "connect to upstream " + peer.server.hostPort()
                        + " timed out" : "connect to upstream " + peer.server.hostPort() + ": " + e.getMessage(), false);
                upstreams.failed(peer, last.getMessage());
            }
        }
        throw last != null ? last : new HttpError(502, "no upstream server", false);
    }

    /**
     * Sends the head and the request body: client_body_timeout between reads. A body that
     * came with the head goes out with it, here; one still to come goes on a thread of its
     * own ({@link Upload}) while this one waits for the response.
     */
    private void sendRequest(Upstreams.Connection up, Body body, byte[] head) throws IOException, HttpError {
        client.readTimeout(config.clientBodyTimeout());
        if (!body.isEmpty() && !(body instanceof Body.Length l && client.in.remaining() >= l.bytes())) {
            up.wire().readTimeout(Upload.WHILE_SENDING); // read_timeout begins when the body is sent
            upload = Upload.start(client, body, up, ByteBuffer.wrap(head), settings.clientMaxBodySize(), buffers,
                    settings.readTimeout());
            return;
        }
        try {
            Relay.copy(client, body, up.wire(), body, ByteBuffer.wrap(head), settings.clientMaxBodySize(), buffers);
        } catch (Relay.ReadFailed e) {
            up.close(); // never let the upstream see a truncated body as complete
            throw HttpError.clientGone("reading request body: " + e.getMessage(), e);
        } catch (HttpError e) {
            up.close();
            throw e;
        } catch (Relay.WriteFailed e) {
            up.close();
            if (e.getCause() instanceof Wire.Timeout timeout) throw timeout; // 504 (send_timeout)
            if (!body.isEmpty()) throw new HttpError(502, "sending request body: " + e.getMessage(), true);
            throw e; // nothing of the client's is lost: the caller may retry
        }
        requestBodyDone = true;
    }

    /**
     * No response came while the body was being sent: the upload's own failure is the
     * cause if it has one (the client's, or the upstream's send_timeout), else the
     * upstream's failure to answer.
     */
    private HttpError uploadFailed(Upstreams.Connection up, IOException e) {
        Exception cause = upload.failure();
        if (cause instanceof HttpError bad) return bad; // 400, 413: the client's body
        if (cause instanceof Relay.ReadFailed r) return HttpError.clientGone("reading request body: " + r.getMessage(), r);
        upstreams.failed(up.peer(), "sending request body: " + (cause != null ? cause.getMessage() : e.getMessage()));
        if (cause != null && cause.getCause() instanceof Wire.Timeout) {
            return new HttpError(504, "sending request body: " + cause.getMessage(), true);
        }
        String what = cause != null ? "sending request body: " + cause.getMessage() : "upstream failed: " + e.getMessage();
        return new HttpError(e instanceof Wire.Timeout ? 504 : 502, what, true);
    }

    /**
     * After the exchange: the body is either all sent, or never will be (the response came
     * first, or failed): then the upstream connection can't be reused, the upload stops,
     * and the client connection closes after the response (its unread body is not a request).
     */
    private void endUpload(Upstreams.Connection up) {
        if (upload.sent()) {
            requestBodyDone = true;
            return;
        }
        up.close();
        try {
            upload.abandon(Config.LINGERING_TIME);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Reads the final response head, passing interim (1xx) responses on to the client. */
    private HttpParser.Response readResponseHead(Upstreams.Connection up, HttpParser.Request req)
            throws IOException, HttpError {
        for (int interim = 0; ; interim++) { // interim: the 1xx responses passed on so far
            up.wire().readSoon(); // the response is on its way: take it without parking, if it came
            byte[] head = HeadReader.readHead(up.wire(), HeadReader.Limits.RESPONSE); // else read_timeout
            if (head == null) throw new EOFException("upstream closed the connection without a response");
            HttpParser.Response resp = HttpParser.parseResponse(head);
            if (resp.status() >= 200 || resp.status() == 101) return resp;
            // Checked before passing it on, so that no more than the cap ever reaches the client.
            if (interim == Config.MAX_INTERIM_RESPONSES) throw new HttpError(502, "too many 1xx responses", true);
            // RFC 9110 15.2: forward 1xx (103 Early Hints, ...), except to an HTTP/1.0 client.
            if (req.http11()) {
                writeToClient(Forwarding.interimHead(resp));
                interimSent = true;
            }
        }
    }

    /** Sends the response on, streaming its body; returns whether the client connection stays open. */
    private boolean respond(HttpParser.Request req, Upstreams.Connection up, HttpParser.Response resp,
                            boolean keepAlive, String upgrade) throws HttpError {
        status = resp.status();
        if (resp.status() == 101) {
            switchProtocols(up, resp, upgrade);
            return false;
        }
        Body in;
        try {
            in = HttpParser.responseBody(resp, req.method());
        } catch (HttpError e) {
            up.close();
            throw e;
        }
        // The upstream connection may carry another request only if this exchange ends
        // cleanly and the server didn't say it would close (RFC 9112 9.3).
        boolean reusable = resp.http11() && !resp.headers().hasToken("Connection", "close")
                && !(in instanceof Body.UntilClose);
        // An answer that came before the request body was all sent (a 413 to an upload, or
        // an echo that streams) ends both connections after it; and one that says the server
        // is closing means it wants no more of the body: stop sending it (RFC 9112 9.5).
        if (upload != null && !upload.sent() && !upload.finishing()) {
            if (!reusable) upload.stop(up);
            keepAlive = reusable = false;
        }
        // An HTTP/1.0 client can't read chunked: it gets the body raw, then the close.
        Body out = in instanceof Body.Chunked || in instanceof Body.UntilClose
                ? (req.http11() ? Body.CHUNKED : Body.UNTIL_CLOSE) : in;
        // gzip: compressed if the client accepts it and the response allows it; its length is
        // then known only at the end, so the body goes chunked, or raw until the close.
        Gzip.Encoder gzip = Gzip.start(config.gzip(), buffers, req, resp, in, upgrade != null);
        if (gzip != null) out = req.http11() ? Body.CHUNKED : Body.UNTIL_CLOSE;
        if (out instanceof Body.UntilClose || connections.draining()) keepAlive = false; // stopping: the last response
        config.addHeader().forEach(resp.headers()::add); // add_header.NAME
        ByteBuffer head = ByteBuffer.wrap(Forwarding.responseHead(resp, out, keepAlive, false));
        try (gzip) {
            bodyBytesSent = Relay.copy(up.wire(), in, client, out, head, 0, buffers, gzip);
            if (gzip != null) {
                bodyBytesSent = gzip.bytesOut();
                gzipRatio = Gzip.ratio(gzip.bytesIn(), gzip.bytesOut());
            }
        } catch (IOException | HttpError e) {
            up.close();
            // The head waits to go out with the first piece of the body: if the body was bad
            // before any of the head was written, the client can still get a 502.
            responseStarted = head.position() > 0;
            if (!responseStarted && !(e instanceof Relay.WriteFailed)) {
                throw new HttpError(502, "bad response body from upstream: " + e.getMessage(), true);
            }
            // Cut short, a Content-Length or chunked body shows it is incomplete; one that runs
            // until the close would look complete after a FIN (RFC 9112 6.3 rule 8): RST it.
            reset = out instanceof Body.UntilClose;
            if (e instanceof Relay.WriteFailed w) throw HttpError.clientGone("sending the response: " + e.getMessage(), w);
            throw HttpError.abort("relaying response body: " + e.getMessage());
        } catch (RuntimeException | Error e) {
            responseStarted = head.position() > 0; // so the access log has the status that went out
            throw e;
        }
        responseStarted = true;
        upstreams.succeeded(up.peer());
        // Bytes after the end of the response are not ours to forward, and make the
        // connection unusable: whatever they are, they would be read as the next response.
        if (reusable && !up.wire().in.hasRemaining()) upstreams.release(up);
        else up.close();
        return keepAlive;
    }

    /** 101: check the upstream agreed to what was asked, then tunnel bytes both ways. */
    private void switchProtocols(Upstreams.Connection up, HttpParser.Response resp, String upgrade) throws HttpError {
        if (upgrade == null) {
            up.close();
            throw new HttpError(502, "101 Switching Protocols without an upgrade request", true);
        }
        if (!upgrade.equalsIgnoreCase(resp.headers().first("Upgrade"))) {
            up.close(); // RFC 9110 7.8: the server switches to a protocol the client named
            throw new HttpError(502, "101 to a protocol that was not asked for", true);
        }
        if (upgrade.equalsIgnoreCase("websocket") && !resp.headers().has("Sec-WebSocket-Accept")) {
            up.close(); // RFC 6455 4.1: the handshake is not complete without it
            throw new HttpError(502, "WebSocket 101 without Sec-WebSocket-Accept", true);
        }
        responseStarted = true;
        try {
            config.addHeader().forEach(resp.headers()::add); // add_header.NAME
            writeToClient(Forwarding.responseHead(resp, Body.EMPTY, true, true));
            Tunnel.run(client, up.wire(), settings.readTimeout(), buffers);
            upstreams.succeeded(up.peer());
        } finally {
            up.close();
        }
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
        if (!body.isEmpty() && !client.in.hasRemaining()) writeToClient(CONTINUE);
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
        boolean close = e.close || !requestBodyDone || request == null || !clientKeepAlive || connections.draining();
        // A client that goes away between requests (a reset while idle) is no event worth a line.
        if (requestLine != null) logFailure(e);
        if (e.clientGone != 0 && !responseStarted) status = e.clientGone; // for the access log only: 499
        if (e.status == 0 || responseStarted) return false;
        status = e.status;
        boolean head = request != null && request.method().equals("HEAD");
        try {
            client.write(Forwarding.errorResponse(e.status, close, head));
            if (!head) bodyBytesSent = Forwarding.errorBody(e.status).length(); // $body_bytes_sent, as nginx counts its own
        } catch (IOException ignored) {
            return false;
        }
        return !close;
    }

    private void writeToClient(byte[] bytes) throws HttpError {
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
        log.log(level, what + ": " + e.getMessage() + context());
    }

    /** Which client and request an error log line is about, as nginx appends them. */
    private String context() {
        return ", client: " + Forwarding.ip(client.remote)
                + (requestLine == null ? "" : ", request: \"" + LogFormat.escape(requestLine) + "\"");
    }

    /** Notes a server tried for this request: $upstream_addr, $upstream_status, $upstream_response_time. */
    private void tried(Upstreams.Peer peer, int upstreamStatus, long since) {
        if (attempts == null) attempts = new ArrayList<>(2);
        long nanos = System.nanoTime() - since;
        attempts.add(new LogFormat.Attempt(peer.server, upstreamStatus, nanos));
        upstreams.attempted(peer, upstreamStatus, nanos); // the status page's counters
    }

    /** $request_id: made on first use, by a header template or the access log, then the same for both. */
    private String requestId() {
        if (requestId == null) requestId = LogFormat.newRequestId();
        return requestId;
    }

    private static String firstLine(byte[] head) {
        int n = 0;
        while (head[n] != '\r') n++;
        return new String(head, 0, n, StandardCharsets.ISO_8859_1);
    }
}
