import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * What is known of one request and its answer while it is served: what the error handler
 * needs to decide how a failure can still be answered (has the response started? was the
 * request body read?), and what the access log writes at the end. {@link ClientConnection}
 * makes one per request and drops it when the exchange ends, so that an idle connection
 * holds none of it; {@link ProxyPass} fills in what the upstream did.
 */
final class Exchange {
    final long started = System.nanoTime(); // $request_time counts from here
    String requestLine;           // null: nothing arrived (yet); "": a head rejected before its line was known
    HttpParser.Request request;
    Routes.Route route;           // the request's route: its group, and its settings (route.NAME.*)
    Config settings;              // config, or the route's overrides of it: headers, read_timeout, client_max_body_size
    Upstreams upstreams;          // the route's group
    InetAddress remoteAddr;       // the client's address: the peer's, or behind trusted proxies (RealIp)
    boolean clientKeepAlive;      // what the client asked for: HTTP/1.1 without "Connection: close"
    boolean requestBodyDone;
    Upload upload;                // the request body, while another thread sends it (full duplex)
    boolean interimSent;          // a 1xx went to the client: the request can't go to another server
    boolean responseStarted;
    boolean reset;                // end the connection with RST: a response was cut short
    int status;
    long bodyBytesSent;           // what went on the wire: compressed, if it was (Gzip)
    String gzipRatio;             // $gzip_ratio, or null
    private List<LogFormat.Attempt> attempts; // the upstream servers tried, or null: $upstream_*
    private String requestId;     // $request_id, made when first used

    Exchange(Config config) {
        this.settings = config;
    }

    /** $request_id: made on first use, by a header template or the access log, then the same for both. */
    String requestId() {
        if (requestId == null) requestId = LogFormat.newRequestId();
        return requestId;
    }

    /** Notes a server tried for this request: $upstream_addr, $upstream_status, $upstream_response_time. */
    void tried(Upstreams.Peer peer, int upstreamStatus, long since) {
        if (attempts == null) attempts = new ArrayList<>(2);
        long nanos = System.nanoTime() - since;
        attempts.add(new LogFormat.Attempt(peer.server, upstreamStatus, nanos));
        upstreams.attempted(peer, upstreamStatus, nanos); // the status page's counters
    }

    /** Which client and request an error log line is about, as nginx appends them. */
    String context(Wire client) {
        return ", client: " + Forwarding.ip(client.remote)
                + (requestLine == null ? "" : ", request: \"" + LogFormat.escape(requestLine) + "\"");
    }

    /** The access log's entry for this exchange. */
    LogFormat.Entry logEntry(Wire client) {
        InetSocketAddress remote = remoteAddr == null || remoteAddr == client.remote.getAddress() ? client.remote
                : new InetSocketAddress(remoteAddr, client.remote.getPort()); // the client behind a trusted proxy
        return new LogFormat.Entry(remote, requestLine, request, status, bodyBytesSent, System.nanoTime() - started,
                attempts, this::requestId, gzipRatio, route == null ? null : route.name(),
                route == null ? null : route.group(), client.tls);
    }
}
