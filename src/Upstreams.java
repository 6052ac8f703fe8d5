import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The upstream servers: which one gets the next request, which are down, and the idle
 * keep-alive connections to each.
 *
 * <ul>
 * <li>Choice: smooth weighted round-robin, nginx's algorithm: each pick adds every live
 *     server's weight to its score, takes the highest, and subtracts the total from it.
 * <li>Health, passive as in nginx: {@code max_fails} failed attempts within
 *     {@code fail_timeout} take a server out of the choice for {@code fail_timeout}.
 *     0 disables it. When every server is out, the least recently failed one is tried
 *     anyway rather than refusing without trying.
 * <li>Health, active: a server that fails its {@link HealthCheck} is out of rotation until it
 *     passes again. When every server is out by health check, the checks can't tell, and
 *     all are chosen from as if there were none (max_fails still applies).
 * <li>Peers: each server given by IP address is one peer; one given by host name is a peer
 *     for each address the name has now, with the server's weight, as {@link Resolver} finds
 *     them. A peer whose address went away gets no new requests and keeps no connection.
 * <li>Pool: idle connections per server, newest first, in step with demand (as HAProxy
 *     keeps them): as many as were in use at once lately, at least {@code upstream_keepalive}.
 *     A steady load of a thousand concurrent requests thus finds a thousand connections
 *     ready, instead of opening hundreds a second, each a SYN the server's listen queue may
 *     drop (a second's wait for the retry). Once a second, connections idle longer than
 *     {@code upstream_keepalive_timeout}, and those beyond the demand of the last
 *     {@link #DEMAND_WINDOW}, are closed, the longest idle first. A connection goes back
 *     only after an exchange that ended cleanly, and is checked without blocking before
 *     reuse (the server may have closed it meanwhile).
 * </ul>
 */
final class Upstreams {
    /** One server's state (for a server given by name, one address's). Guarded by the Upstreams lock. */
    static final class Peer {
        final Config.Server entry;  // the upstream entry it comes from
        final Config.Server server; // the address it connects to: the entry's, or one its name resolved to
        private int score;
        private volatile int fails;
        private long windowStart;  // nanoTime of the first failure counted in fails
        private volatile long downUntil; // nanoTime until which the server is out; 0 = up
        private final Deque<Idle> idle = new ArrayDeque<>(); // newest first
        private int lent;       // connections out of the pool now
        private int demand;     // the most lent at once in this demand window
        private int lastDemand; // ... and in the window before
        // The shortest idle time after which a pooled connection was found closed by the
        // server lately: its own keep-alive timeout is at most that. Long.MAX_VALUE: none seen.
        private long closesIdleAfter = Long.MAX_VALUE;
        private long closesIdleSeen;  // nanoTime of the last such find
        private volatile boolean healthy = true; // false: out of rotation by health check
        private boolean retired; // its address went away: no new requests, nothing pooled
        final Counters.Server counters = new Counters.Server(); // for the status page

        Peer(Config.Server entry, InetSocketAddress address) {
            this.entry = entry;
            this.server = new Config.Server(address, entry.weight(), entry.name());
        }

        boolean healthy() {
            return healthy;
        }

        /** Whether it gets requests: neither down by max_fails nor out by health check. */
        boolean up() {
            long d = downUntil;
            return healthy && (d == 0 || System.nanoTime() - d >= 0);
        }

        /** How the logs name it: host:port, and for a server given by name its address too. */
        String label() {
            return server.name() == null ? server.hostPort()
                    : server.hostPort() + " (" + Forwarding.ip(server.address()) + ")";
        }
    }

    /** A pooled connection: since when it is idle, and how many requests it has carried. */
    private record Idle(Wire wire, long since, int requests) {}

    /**
     * A connection lent for one exchange, and whether it came from the pool. It ends either
     * way: given back with {@link Upstreams#release} or closed with {@link #close}.
     */
    final class Connection {
        private final Peer peer;
        private final Wire wire;
        private final boolean reused;
        private final int requests; // carried before this one
        private final long started; // nanoTime when it was asked for: $upstream_response_time counts from here
        private boolean ended;

        private Connection(Peer peer, Wire wire, boolean reused, int requests, long started) {
            this.peer = peer;
            this.wire = wire;
            this.reused = reused;
            this.requests = requests;
            this.started = started;
            synchronized (Upstreams.this) {
                peer.demand = Math.max(peer.demand, ++peer.lent);
            }
        }

        Peer peer() {
            return peer;
        }

        Wire wire() {
            return wire;
        }

        boolean reused() {
            return reused;
        }

        long started() {
            return started;
        }

        /**
         * Closes the connection: it can't carry another exchange. Safe to call again, and
         * after {@link Upstreams#release}: a wire back in the pool is not this exchange's to close.
         */
        void close() {
            if (end()) wire.close();
        }

        private boolean end() {
            synchronized (Upstreams.this) {
                if (ended) return false;
                ended = true;
                peer.lent--;
                return true;
            }
        }
    }

    /** How long the idle time after which a server closed a pooled connection is remembered (see safeIdle). */
    static final Duration IDLE_CLOSE_MEMORY = Duration.ofSeconds(60);

    /** How often idle connections are looked over; the demand remembered is that of the last two. */
    static final Duration DEMAND_WINDOW = Duration.ofSeconds(10);

    private final Config config;
    private final Log log;
    private volatile List<Peer> peers; // immutable; replaced whole when a name's addresses change
    private int outOfRotation; // peers that failed their health check (guarded by this)
    private final Thread maintenance;
    private boolean closed; // stopping: nothing goes back to the pool (guarded by this)
    private long windowStart = System.nanoTime();
    final Counters.Histogram responseTimes = new Counters.Histogram(); // the group's, for /metrics

    Upstreams(Config config, Log log) {
        this.config = config;
        this.log = log;
        peers = config.upstream().stream().map(s -> new Peer(s, s.address())).toList();
        maintenance = Thread.ofVirtual().name("upstream pool").start(this::maintain);
    }

    /** Once a second: closes the idle connections that are too old or more than demand needs. */
    private void maintain() {
        boolean reported = false;
        try {
            while (true) {
                Thread.sleep(1000);
                try {
                    expire(System.nanoTime()).forEach(Wire::close);
                } catch (RuntimeException e) {
                    // The next look will do: idle connections must not be kept for good. Said once.
                    if (!reported) log.unexpected("closing idle upstream connections", e);
                    reported = true;
                }
            }
        } catch (InterruptedException e) {
            // close: shutting down
        }
    }

    synchronized List<Wire> expire(long now) {
        boolean newWindow = now - windowStart >= DEMAND_WINDOW.toNanos();
        if (newWindow) windowStart = now;
        List<Wire> out = new ArrayList<>();
        long maxIdle = config.upstreamKeepaliveTimeout().toNanos();
        for (Peer p : peers) {
            if (newWindow) {
                p.lastDemand = p.demand;
                p.demand = p.lent;
            }
            int keep = keep(p);
            while (!p.idle.isEmpty() && (p.idle.size() > keep || now - p.idle.peekLast().since() > maxIdle)) {
                out.add(p.idle.pollLast().wire());
            }
        }
        return out;
    }

    /** One attempt at a server ended, with this status (0: none came) after this long: counted. */
    void attempted(Peer p, int status, long nanos) {
        p.counters.attempt(status, nanos);
        responseTimes.observe(nanos);
    }

    /** The server's connections lent now and idle in the pool, for the status page. */
    synchronized int[] pool(Peer p) {
        return new int[] {p.lent, p.idle.size()};
    }

    /** The settings of its group: the global ones, with the group's own keys over them. */
    Config config() {
        return config;
    }

    /** How many servers there are (each address of a name counted). */
    int size() {
        return peers.size();
    }

    /** The servers now, for {@link HealthCheck}. */
    List<Peer> peers() {
        return peers;
    }

    /**
     * A server given by name now has these addresses ({@link Resolver}): each is a peer, the
     * ones already known keep their state (failures, health, pool), new ones get a new peer,
     * and the peers of addresses that went away get no new requests and their idle
     * connections are closed (a connection lent now is closed when it is given back).
     */
    void readdress(Config.Server entry, List<InetSocketAddress> addresses) {
        List<Wire> idle = new ArrayList<>();
        synchronized (this) {
            Map<InetSocketAddress, Peer> known = new HashMap<>(); // the entry's peers until now
            for (Peer p : peers) {
                if (p.entry == entry) known.put(p.server.address(), p); // identity: two equal entries are two servers
            }
            List<Peer> next = new ArrayList<>();
            boolean placed = false;
            for (Peer p : peers) {
                if (p.entry != entry) {
                    next.add(p);
                } else if (!placed) { // the entry's peers now, where its first one was
                    for (InetSocketAddress a : addresses) next.add(known.containsKey(a) ? known.remove(a) : new Peer(entry, a));
                    placed = true;
                }
            }
            for (Peer gone : known.values()) {
                gone.retired = true;
                if (!gone.healthy) outOfRotation--;
                gone.idle.forEach(i -> idle.add(i.wire()));
                gone.idle.clear();
            }
            peers = List.copyOf(next);
        }
        idle.forEach(Wire::close);
    }

    /**
     * HealthCheck's verdict: a server out of rotation gets no requests, unless every one is
     * out. False if it changes nothing (the peer's address went away meanwhile).
     */
    synchronized boolean healthy(Peer p, boolean healthy) {
        if (p.healthy == healthy || p.retired) return false;
        p.healthy = healthy;
        outOfRotation += healthy ? -1 : 1;
        return true;
    }

    /** Picks the next server, skipping the ones already tried for this request; null if none is left. */
    synchronized Peer choose(List<Peer> tried) {
        long now = System.nanoTime();
        // Out of rotation by health check: no requests, unless every server is (see HealthCheck).
        boolean skipUnhealthy = outOfRotation > 0 && outOfRotation < peers.size();
        Peer best = null;
        int total = 0;
        for (Peer p : peers) {
            if (tried.contains(p) || skipUnhealthy && !p.healthy || p.downUntil != 0 && now - p.downUntil < 0) continue;
            p.score += p.server.weight();
            total += p.server.weight();
            if (best == null || p.score > best.score) best = p;
        }
        if (best != null) {
            best.score -= total;
            return best;
        }
        for (Peer p : peers) { // all out: try the one that has been out longest
            if (tried.contains(p) || skipUnhealthy && !p.healthy) continue;
            if (best == null || p.downUntil - best.downUntil < 0) best = p;
        }
        return best;
    }

    /**
     * A request that can't be sent again (a POST, a body) goes on a pooled connection only
     * if it has been idle less than this: no common server closes idle connections sooner
     * (gunicorn 2 s, Node and Apache 5 s), so none is lost to a close it crossed on the way.
     * A longer-idle one is left for requests that can be sent again, or expires.
     */
    static final Duration ONCE_ONLY_MAX_IDLE = Duration.ofSeconds(1);

    /**
     * A pooled connection to the peer if a usable one is idle (and {@code pooled}), else a
     * new one. {@code replayable}: whether the request could be sent again if the server
     * closed the connection just as it went (else see {@link #ONCE_ONLY_MAX_IDLE}).
     */
    Connection connect(Peer peer, boolean pooled, boolean replayable) throws IOException {
        long started = System.nanoTime();
        while (pooled) {
            Idle idle;
            long idleFor;
            boolean tooOld;
            synchronized (this) {
                idle = peer.idle.peekFirst(); // the newest: the least idle
                if (idle == null) break;
                idleFor = started - idle.since();
                if (!replayable && idleFor >= ONCE_ONLY_MAX_IDLE.toNanos()) break; // left for requests that can go again
                peer.idle.pollFirst();
                tooOld = idleFor >= safeIdle(peer, started);
            }
            boolean stale = idle.wire().isStale();
            if (stale) closedWhileIdle(peer, idleFor);
            else if (!tooOld) return new Connection(peer, idle.wire(), true, idle.requests(), started);
            idle.wire().close(); // closed by the server, or idle too near the time it closes them
        }
        SocketChannel channel = SocketChannel.open();
        try {
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            // A blocking SocketChannel.connect has no timeout, but its socket adaptor's
            // connect(address, timeout) does: that is our connect_timeout.
            channel.socket().connect(peer.server.address(), (int) config.connectTimeout().toMillis());
            return new Connection(peer, new Wire(channel, 4096, config.readTimeout(), config.sendTimeout()), false, 0, started);
        } catch (SocketTimeoutException e) {
            channel.close();
            throw new Wire.Timeout("connect to " + peer.server.hostPort());
        } catch (IOException e) {
            channel.close();
            throw e;
        }
    }

    /**
     * Gives a connection whose exchange ended cleanly back to the pool, or closes it: with
     * upstream_keepalive = 0, or when the pool already holds what demand needs.
     */
    void release(Connection c) {
        Wire w = c.wire();
        w.shrink(); // keeps its small read buffer: the next exchange needs one at once
        synchronized (this) {
            if (!c.end()) return; // already ended
            Peer p = c.peer();
            boolean worn = c.requests + 1 >= config.upstreamKeepaliveRequests();
            if (!closed && !worn && !p.retired && config.upstreamKeepalive() > 0 && p.idle.size() < keep(p)) {
                p.idle.addFirst(new Idle(w, System.nanoTime(), c.requests + 1));
                return;
            }
        }
        w.close();
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
    private long safeIdle(Peer p, long now) { // guarded by this
        if (now - p.closesIdleSeen > IDLE_CLOSE_MEMORY.toNanos()) return Long.MAX_VALUE;
        long d = p.closesIdleAfter;
        return d == Long.MAX_VALUE ? Long.MAX_VALUE : d - d / 4;
    }

    /** The server closed a pooled connection that had been idle this long (see {@link #safeIdle}). */
    synchronized void closedWhileIdle(Peer p, long idleFor) {
        long now = System.nanoTime();
        boolean forgotten = now - p.closesIdleSeen > IDLE_CLOSE_MEMORY.toNanos();
        p.closesIdleAfter = forgotten ? idleFor : Math.min(p.closesIdleAfter, idleFor);
        p.closesIdleSeen = now;
    }

    /** Idle connections to keep: what the recent demand needs beyond those lent now, at least upstream_keepalive. */
    private int keep(Peer p) {
        return Math.max(config.upstreamKeepalive(), Math.max(p.demand, p.lastDemand) - p.lent);
    }

    /**
     * Counts a failed attempt (refused, timed out, reset) toward max_fails. Going down is
     * logged once: a server that fails again while down (tried when all are) stays down quietly.
     */
    synchronized void failed(Peer p, String why) {
        p.counters.failed(why);
        if (config.maxFails() == 0) return;
        long now = System.nanoTime();
        if (p.fails == 0 || now - p.windowStart > config.failTimeout().toNanos()) {
            p.fails = 0;
            p.windowStart = now;
        }
        if (++p.fails >= config.maxFails()) {
            if (p.downUntil == 0) {
                log.warn("upstream " + p.server.hostPort() + " marked down for " + seconds(config.failTimeout()) + ": "
                        + p.fails + " failed attempt" + (p.fails == 1 ? "" : "s") + " (max_fails = " + config.maxFails() + ")");
            }
            p.downUntil = nonZero(now + config.failTimeout().toNanos());
            p.fails = 0;
        }
    }

    /** A successful exchange brings a server back at once. */
    void succeeded(Peer p) {
        if (p.fails == 0 && p.downUntil == 0) return; // the common case, without taking the lock
        synchronized (this) {
            if (p.downUntil != 0) log.notice("upstream " + p.server.hostPort() + " is back up");
            p.fails = 0;
            p.downUntil = 0;
        }
    }

    private static long nonZero(long t) {
        return t == 0 ? 1 : t; // 0 means up
    }

    private static String seconds(Duration d) {
        return d.toMillis() % 1000 == 0 ? d.toSeconds() + "s" : d.toMillis() + "ms";
    }

    /** At shutdown: closes every idle connection, and from now on each one given back. */
    synchronized void close() {
        closed = true;
        maintenance.interrupt();
        for (Peer p : peers) {
            p.idle.forEach(i -> i.wire().close());
            p.idle.clear();
        }
    }
}
