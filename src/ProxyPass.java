import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;

/**
 * One request sent on to its upstream group, and the answer relayed back to the client:
 * nginx's proxy_pass, the heart of Go's {@code ReverseProxy.ServeHTTP}. {@link #forward}
 * reads like the algorithm:
 *
 * <pre>
 *   choose a server            (NextUpstream: the group's round-robin; a pooled connection or a new one)
 *   rewrite and send the head, stream the body    (an Upload thread, if the body is still coming)
 *   read the response head     (read_timeout: 504; garbage: 502; 1xx passed on)
 *   rewrite and send it, stream its body          (gzip, if on; 101: the tunnel)
 *   keep or close the upstream connection
 * </pre>
 *
 * A server that fails before any of the response reached the client may be replaced by the
 * next (proxy_next_upstream); after that, a failure can only end the connection. What
 * happened is written into the {@link Exchange}, which the connection's error handler and
 * access log read.
 */
final class ProxyPass {
    private final Config config;
    private final Wire client;
    private final BufferPool buffers;
    private final Log log;
    private final Connections connections;
    private final Exchange ex;
    private final Config settings;     // the route's: headers, read_timeout, client_max_body_size
    private final Upstreams upstreams; // the route's group

    ProxyPass(Config config, Wire client, BufferPool buffers, Log log, Connections connections, Exchange ex) {
        this.config = config;
        this.client = client;
        this.buffers = buffers;
        this.log = log;
        this.connections = connections;
        this.ex = ex;
        this.settings = ex.settings;
        this.upstreams = ex.upstreams;
    }

    /** Forwards the request and relays the response; returns whether the client connection stays open. */
    boolean forward(HttpParser.Request req, Body body, String upgrade) throws HttpError {
        NextUpstream next = new NextUpstream(upstreams, upstreams.config(), req, body);
        byte[] upstreamHead = null; // made once: it rewrites the request's headers in place
        while (true) {
            Upstreams.Connection up = connect(next);
            int upstreamStatus = 0; // what this server answered, for the access log; 0 = nothing (yet)
            try {
                if (upstreamHead == null) {
                    upstreamHead = Forwarding.requestHead(req, body, client.remote, ex.remoteAddr, settings, up.peer().server,
                            upgrade, upstreams.config().upstreamKeepalive() == 0, ex::requestId,
                            client.tls == null ? "http" : "https");
                }
                up.wire().readTimeout(settings.readTimeout()); // the route's, on a pooled connection too
                try {
                    sendRequest(up, body, upstreamHead);
                    HttpParser.Response resp = readResponseHead(up, req);
                    upstreamStatus = resp.status();
                    return respond(req, up, resp, ex.clientKeepAlive, upgrade);
                } finally {
                    if (ex.upload != null) endUpload(up);
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
                stopIfAborted();
                boolean timeout = e instanceof Wire.Timeout;
                upstreamStatus = timeout ? 504 : 502;
                if (ex.upload != null) throw uploadFailed(up, e); // a body that went out is not sent again
                // A pooled connection that fails at once was closed by the server while idle: the
                // request goes again. One that timed out was not (the server is slow): sending it
                // again would double the wait and the server's work (nginx, too, gives a cached
                // connection its extra try for an error only).
                if (!timeout && next.retryStale(up)) continue;
                String why = "upstream " + up.peer().server.hostPort() + (timeout ? " timed out: " : " failed: ") + e.getMessage();
                upstreams.failed(up.peer(), why);
                if (!ex.interimSent && next.maySendAgain()) {
                    log.error(why + ", trying the next server" + ex.context(client));
                    continue;
                }
                throw new HttpError(timeout ? 504 : 502, why, false);
            } finally {
                ex.tried(up.peer(), upstreamStatus, up.started());
            }
        }
    }

    /**
     * After a failed read, write or connect: if ClientConnection.abort interrupted this thread
     * (shutdown_timeout ran out), the failure is the stop's, not the server's.
     */
    private static void stopIfAborted() throws HttpError {
        if (Thread.currentThread().isInterrupted()) throw HttpError.abort("closed at the end of shutdown_timeout");
    }

    /** Connects to the next server; one that can't be reached counts against it, and the next is tried. */
    private Upstreams.Connection connect(NextUpstream next) throws HttpError {
        HttpError last = null;
        for (Upstreams.Peer peer; (peer = next.server()) != null; ) {
            if (last != null) log.error(last.getMessage() + ", trying the next server" + ex.context(client)); // ClientConnection.answer logs the last
            long since = System.nanoTime();
            try {
                return upstreams.connect(peer, next.pooled(), next.replayable());
            } catch (IOException e) {
                stopIfAborted();
                boolean timeout = e instanceof Wire.Timeout;
                ex.tried(peer, timeout ? 504 : 502, since);
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
            ex.upload = Upload.start(client, body, up, ByteBuffer.wrap(head), settings.clientMaxBodySize(), buffers,
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
        ex.requestBodyDone = true;
    }

    /**
     * No response came while the body was being sent: the upload's own failure is the
     * cause if it has one (the client's, or the upstream's send_timeout), else the
     * upstream's failure to answer.
     */
    private HttpError uploadFailed(Upstreams.Connection up, IOException e) {
        Throwable cause = ex.upload.failure();
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
        if (ex.upload.sent()) {
            ex.requestBodyDone = true;
            return;
        }
        up.close();
        try {
            ex.upload.abandon(Config.LINGERING_TIME);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        // The upload's thread met an Error (out of memory): this thread's to report, as its own.
        if (ex.upload.failure() instanceof Error e) throw e;
    }

    /** Reads the final response head, passing interim (1xx) responses on to the client. */
    private HttpParser.Response readResponseHead(Upstreams.Connection up, HttpParser.Request req)
            throws IOException, HttpError {
        for (int interim = 0; ; interim++) { // interim: the 1xx responses passed on so far
            up.wire().yieldBeforeRead(); // the response is on its way: let it come, then read it without parking
            byte[] head = HeadReader.readHead(up.wire(), HeadReader.Limits.RESPONSE); // else read_timeout
            if (head == null) throw new EOFException("upstream closed the connection without a response");
            HttpParser.Response resp = HttpParser.parseResponse(head);
            if (resp.status() >= 200 || resp.status() == 101) return resp;
            // Checked before passing it on, so that no more than the cap ever reaches the client.
            if (interim == Config.MAX_INTERIM_RESPONSES) throw new HttpError(502, "too many 1xx responses", true);
            // RFC 9110 15.2: forward 1xx (103 Early Hints, ...), except to an HTTP/1.0 client.
            if (req.http11()) {
                ClientConnection.writeToClient(client, Forwarding.interimHead(resp));
                ex.interimSent = true;
            }
        }
    }

    /** Sends the response on, streaming its body; returns whether the client connection stays open. */
    private boolean respond(HttpParser.Request req, Upstreams.Connection up, HttpParser.Response resp,
                            boolean keepAlive, String upgrade) throws HttpError {
        ex.status = resp.status();
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
        if (ex.upload != null && !ex.upload.sent() && !ex.upload.finishing()) {
            if (!reusable) ex.upload.stop(up);
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
            // Counted as it goes: a body cut short is logged with what did go out, as nginx logs it.
            Relay.copy(up.wire(), in, client, out, head, 0, buffers, gzip, n -> ex.bodyBytesSent = n);
            if (gzip != null) ex.gzipRatio = Gzip.ratio(gzip.bytesIn(), gzip.bytesOut());
        } catch (IOException | HttpError e) {
            up.close();
            // The head waits to go out with the first piece of the body: if the body was bad
            // before any of the head was written, the client can still get a 502.
            ex.responseStarted = head.position() > 0;
            if (!ex.responseStarted && !(e instanceof Relay.WriteFailed)) {
                throw new HttpError(502, "bad response body from upstream: " + e.getMessage(), true);
            }
            // Cut short, a Content-Length or chunked body shows it is incomplete; one that runs
            // until the close would look complete after a FIN (RFC 9112 6.3 rule 8): RST it.
            ex.reset = out instanceof Body.UntilClose;
            if (e instanceof Relay.WriteFailed w) throw HttpError.clientGone("sending the response: " + e.getMessage(), w);
            throw HttpError.abort("relaying response body: " + e.getMessage());
        } catch (RuntimeException | Error e) {
            ex.responseStarted = head.position() > 0; // so the access log has the status that went out
            throw e;
        }
        ex.responseStarted = true;
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
        ex.responseStarted = true;
        try {
            config.addHeader().forEach(resp.headers()::add); // add_header.NAME
            ClientConnection.writeToClient(client, Forwarding.responseHead(resp, Body.EMPTY, true, true));
            Tunnel.run(client, up.wire(), settings.readTimeout(), buffers);
            upstreams.succeeded(up.peer());
        } finally {
            up.close();
        }
    }
}
