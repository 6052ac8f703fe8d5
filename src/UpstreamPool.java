import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

/**
 * The idle keep-alive connections to one upstream server, kept in step with demand (as
 * HAProxy keeps them).
 *
 * <ul>
 * <li>How many: as many as were in use at once lately, at least {@code upstream_keepalive}.
 *     A steady load of a thousand concurrent requests thus finds a thousand connections
 *     ready, instead of opening hundreds a second, each a SYN the server's listen queue may
 *     drop (a second's wait for the retry).
 * <li>Which: the newest first (the least idle), checked without blocking before reuse: the
 *     server may have closed it, or sent bytes nobody asked for. One idle near the time the
 *     server is seen to close them itself ({@link #safeIdle}) is closed instead.
 * <li>How long: once a second ({@link Upstreams}), connections idle longer than
 *     {@code upstream_keepalive_timeout}, and those beyond the demand of the last
 *     {@link #DEMAND_WINDOW}, are closed, the longest idle first.
 * <li>What comes back: only a connection whose exchange ended cleanly, and not after
 *     {@code upstream_keepalive_requests} requests.
 * </ul>
 *
 * <p>Its own lock guards all of it; nothing here blocks while holding it.
 */
final class UpstreamPool {
    /** How often idle connections are looked over; the demand remembered is that of the last two. */
    static final Duration DEMAND_WINDOW = Duration.ofSeconds(10);

    /** How long the idle time after which a server closed a pooled connection is remembered (see safeIdle). */
    static final Duration IDLE_CLOSE_MEMORY = Duration.ofSeconds(60);

    /**
     * A request that can't be sent again (a POST, a body) goes on a pooled connection only
     * if it has been idle less than this: no common server closes idle connections sooner
     * (gunicorn 2 s, Node and Apache 5 s), so none is lost to a close it crossed on the way.
     * A longer-idle one is left for requests that can be sent again, or expires.
     */
    static final Duration ONCE_ONLY_MAX_IDLE = Duration.ofSeconds(1);

    /** A pooled connection: since when it is idle, and how many requests it has carried. */
    record Idle(Wire wire, long since, int requests) {}

    private final Config config;
    private final Deque<Idle> idle = new ArrayDeque<>(); // newest first
    private int lent;       // connections out of the pool now
    private int demand;     // the most lent at once in this demand window
    private int lastDemand; // ... and in the window before
    // The shortest idle time after which a pooled connection was found closed by the
    // server lately: its own keep-alive timeout is at most that. Long.MAX_VALUE: none seen.
    private long closesIdleAfter = Long.MAX_VALUE;
    private long closesIdleSeen;  // nanoTime of the last such find
    private boolean closed; // the server's address went away, or the proxy stops: nothing comes back

    UpstreamPool(Config config) {
        this.config = config;
    }

    /**
     * An idle connection fit to carry a request now, taken out of the pool, or null: then
     * the caller opens a new one. Either way, the Upstreams.Connection made for it counts it
     * as lent ({@link #lent}).
     * {@code replayable}: whether the request could be sent again should the server close
     * the connection just as it goes (else see {@link #ONCE_ONLY_MAX_IDLE}).
     */
    Idle take(long now, boolean replayable) {
        while (true) {
            Idle next;
            long idleFor;
            boolean tooOld;
            synchronized (this) {
                next = idle.peekFirst(); // the newest: the least idle
                if (next == null) return null;
                idleFor = now - next.since();
                if (!replayable && idleFor >= ONCE_ONLY_MAX_IDLE.toNanos()) return null; // left for requests that can go again
                idle.pollFirst();
                tooOld = idleFor >= safeIdle(now);
            }
            boolean stale = next.wire().isStale(); // a system call: outside the lock
            if (stale) closedWhileIdle(idleFor);
            else if (!tooOld) return next;
            next.wire().close(); // closed by the server, or idle too near the time it closes them
        }
    }

    /** A connection was lent out (taken, or opened new): demand is counted from these. */
    synchronized void lent() {
        demand = Math.max(demand, ++lent);
    }

    /**
     * A lent connection's exchange ended cleanly: true if it is back in the pool, false if
     * the caller must close it (upstream_keepalive = 0, worn out by
     * upstream_keepalive_requests, the pool closed, or already holding what demand needs).
     */
    synchronized boolean giveBack(Wire wire, int requests) {
        lent--;
        boolean worn = requests >= config.upstreamKeepaliveRequests();
        if (closed || worn || config.upstreamKeepalive() == 0 || idle.size() >= keep()) return false;
        idle.addFirst(new Idle(wire, System.nanoTime(), requests));
        return true;
    }

    /** A lent connection was closed instead of given back. */
    synchronized void lost() {
        lent--;
    }

    /**
     * The connections to close now: idle longer than upstream_keepalive_timeout, or beyond
     * what demand needs. {@code newWindow}: a {@link #DEMAND_WINDOW} has passed, the demand
     * of the one before is forgotten.
     */
    synchronized List<Wire> expire(long now, boolean newWindow) {
        if (newWindow) {
            lastDemand = demand;
            demand = lent;
        }
        List<Wire> out = new ArrayList<>();
        long maxIdle = config.upstreamKeepaliveTimeout().toNanos();
        int keep = keep();
        while (!idle.isEmpty() && (idle.size() > keep || now - idle.peekLast().since() > maxIdle)) {
            out.add(idle.pollLast().wire());
        }
        return out;
    }

    /** Closes every idle connection, and each one given back from now on. */
    void close() {
        List<Idle> all;
        synchronized (this) {
            closed = true;
            all = List.copyOf(idle);
            idle.clear();
        }
        all.forEach(i -> i.wire().close());
    }

    /** Connections lent now and idle now, for the status page. */
    synchronized int[] counts() {
        return new int[] {lent, idle.size()};
    }

    /**
     * How long a pooled connection may have been idle and still be used. A server closes
     * idle connections after a keep-alive timeout of its own (gunicorn: 2 s), and a request
     * sent just as it does is lost; one with a body can't be sent again. So once the server
     * is seen to close a connection idle for d, connections idle for 3/4 of d or longer
     * are not used again; each shorter d seen lowers the limit. A close for some other
     * reason (a restart) can make it much too low: it is forgotten after
     * {@link #IDLE_CLOSE_MEMORY} without a new find.
     */
    private long safeIdle(long now) { // guarded by this
        if (now - closesIdleSeen > IDLE_CLOSE_MEMORY.toNanos()) return Long.MAX_VALUE;
        long d = closesIdleAfter;
        return d == Long.MAX_VALUE ? Long.MAX_VALUE : d - d / 4;
    }

    /** The server closed a pooled connection that had been idle this long (see {@link #safeIdle}). */
    private synchronized void closedWhileIdle(long idleFor) {
        long now = System.nanoTime();
        boolean forgotten = now - closesIdleSeen > IDLE_CLOSE_MEMORY.toNanos();
        closesIdleAfter = forgotten ? idleFor : Math.min(closesIdleAfter, idleFor);
        closesIdleSeen = now;
    }

    /** Idle connections to keep: what the recent demand needs beyond those lent now, at least upstream_keepalive. */
    private int keep() { // guarded by this
        return Math.max(config.upstreamKeepalive(), Math.max(demand, lastDemand) - lent);
    }
}
