import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * The servers one request may go to, in turn: nginx's {@code proxy_next_upstream error
 * timeout}. When a server can't be reached, or fails or times out before any byte of its
 * response, the request goes on to the next one, as long as that is safe and within bounds:
 *
 * <ul>
 *   <li>A request that never reached a server (the connect failed) may always go on.
 *   <li>One that did is sent again only if its method is idempotent (RFC 9110 9.2.2) and it
 *       has no body: this proxy streams bodies instead of keeping them, so one that went to
 *       a server can't be sent again (nginx keeps them, in memory or on disk). A POST that
 *       reached a server is never sent to another, as in nginx since 1.9.13.
 *   <li>At most next_upstream_tries servers (0: each server once), and no new try after
 *       next_upstream_timeout (0: no limit), counted from the first try.
 *   <li>A pooled connection that the server had closed while it was idle (RFC 9112 9.3.1)
 *       is not a try: the request goes once more to the same server, on a new connection.
 * </ul>
 */
final class NextUpstream {
    /** Methods whose request may be sent again (RFC 9110 9.2.2). */
    private static final Set<String> IDEMPOTENT = Set.of("GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE");

    private final Upstreams upstreams;
    private final int maxTries;        // 0: each server once
    private final long deadline;       // System.nanoTime() after which no try begins; 0: none
    private final boolean replayable;  // may be sent again after it reached a server
    private final List<Upstreams.Peer> tried = new ArrayList<>();
    private boolean staleRetried;      // the one retry after a closed pooled connection, taken
    private Upstreams.Peer again;      // that retry's server, to be tried again on a new connection

    NextUpstream(Upstreams upstreams, Config config, HttpParser.Request request, Body body) {
        this.upstreams = upstreams;
        this.maxTries = config.nextUpstreamTries();
        long timeout = config.nextUpstreamTimeout().toNanos();
        this.deadline = timeout == 0 ? 0 : System.nanoTime() + timeout;
        this.replayable = body.isEmpty() && IDEMPOTENT.contains(request.method());
    }

    /** The next server to try, or null when there is none left or the bounds are reached. */
    Upstreams.Peer server() {
        if (again != null) return again;
        if (!more()) return null;
        Upstreams.Peer p = upstreams.choose(tried);
        if (p != null) tried.add(p);
        return p;
    }

    /** Whether the connection to the server just chosen may come from the pool. */
    boolean pooled() {
        boolean pooled = again == null;
        again = null;
        return pooled;
    }

    /**
     * After the exchange failed on a pooled connection before any response: true if the
     * request goes once more to the same server, on a new connection (which is not a try).
     */
    boolean retryStale(Upstreams.Connection failed) {
        if (!failed.reused() || staleRetried || !replayable) return false;
        staleRetried = true;
        again = failed.peer();
        return true;
    }

    /** Whether a server is left to try, within next_upstream_tries and next_upstream_timeout. */
    boolean more() {
        if (tried.isEmpty()) return true;
        if (tried.size() >= upstreams.size() || maxTries > 0 && tried.size() >= maxTries) return false;
        return deadline == 0 || System.nanoTime() - deadline < 0;
    }

    /** Whether the request could be sent again after it reached a server. */
    boolean replayable() {
        return replayable;
    }

    /** After the request reached a server that failed: whether it may go on to another. */
    boolean maySendAgain() {
        return replayable && more();
    }
}
