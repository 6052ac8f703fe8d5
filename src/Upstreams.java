import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The upstream servers of a group: which one gets the next request, which are down, and
 * a connection to the one chosen (from its {@link UpstreamPool}, or new).
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
 * <li>Pool: each peer's idle keep-alive connections, in step with demand
 *     ({@link UpstreamPool}); once a second a virtual thread here has each close the ones
 *     too old or beyond what demand needs.
 * </ul>
 */
final class Upstreams {
    /**
     * One server's state (for a server given by name, one address's). Guarded by the
     * Upstreams lock, but for its pool, which has its own.
     */
    static final class Peer {
        final Config.Server entry;  // the upstream entry it comes from
        final Config.Server server; // the address it connects to: the entry's, or one its name resolved to
        private int score;
        private volatile int fails;
        private long windowStart;  // nanoTime of the first failure counted in fails
        private volatile long downUntil; // nanoTime until which the server is out; 0 = up
        final UpstreamPool pool;   // its idle connections
        private volatile boolean healthy = true; // false: out of rotation by health check
        private boolean retired; // its address went away: no new requests, nothing pooled
        final Counters.Server counters = new Counters.Server(); // for the status page

        Peer(Config.Server entry, InetSocketAddress address, Config config) {
            this.entry = entry;
            this.server = new Config.Server(address, entry.weight(), entry.name());
            this.pool = new UpstreamPool(config);
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
        private boolean ended; // given back or closed (guarded by this)

        private Connection(Peer peer, Wire wire, boolean reused, int requests, long started) {
            this.peer = peer;
            this.wire = wire;
            this.reused = reused;
            this.requests = requests;
            this.started = started;
            peer.pool.lent();
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
            if (!end()) return;
            peer.pool.lost();
            wire.close();
        }

        /** True the first time: the exchange on it ends now. */
        private synchronized boolean end() {
            if (ended) return false;
            ended = true;
            return true;
        }
    }

    private final Config config;
    private final Log log;
    private volatile List<Peer> peers; // immutable; replaced whole when a name's addresses change
    private int outOfRotation; // peers that failed their health check (guarded by this)
    private final Thread maintenance;
    private boolean closed; // stopping: every pool is closed, a new peer's too (guarded by this)
    private long windowStart = System.nanoTime();
    final Counters.Histogram responseTimes = new Counters.Histogram(); // the group's, for /metrics

    Upstreams(Config config, Log log) {
        this.config = config;
        this.log = log;
        peers = config.upstream().stream().map(s -> new Peer(s, s.address(), config)).toList();
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

    /** The idle connections of every peer to close now (see {@link UpstreamPool#expire}). */
    List<Wire> expire(long now) {
        boolean newWindow;
        synchronized (this) {
            newWindow = now - windowStart >= UpstreamPool.DEMAND_WINDOW.toNanos();
            if (newWindow) windowStart = now;
        }
        List<Wire> out = new ArrayList<>();
        for (Peer p : peers) out.addAll(p.pool.expire(now, newWindow));
        return out;
    }

    /** One attempt at a server ended, with this status (0: none came) after this long: counted. */
    void attempted(Peer p, int status, long nanos) {
        p.counters.attempt(status, nanos);
        responseTimes.observe(nanos);
    }

    /** The server's connections lent now and idle in the pool, for the status page. */
    int[] pool(Peer p) {
        return p.pool.counts();
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
        List<Peer> retired = new ArrayList<>();
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
                    for (InetSocketAddress a : addresses) next.add(known.containsKey(a) ? known.remove(a) : new Peer(entry, a, config));
                    placed = true;
                }
            }
            for (Peer gone : known.values()) {
                gone.retired = true;
                if (!gone.healthy) outOfRotation--;
                retired.add(gone);
            }
            peers = List.copyOf(next);
            if (closed) retired.addAll(next); // a lookup that ended after the stop: nothing is pooled
        }
        retired.forEach(p -> p.pool.close());
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
     * A pooled connection to the peer if a usable one is idle (and {@code pooled}), else a
     * new one. {@code replayable}: whether the request could be sent again if the server
     * closed the connection just as it went (see {@link UpstreamPool#take}).
     */
    Connection connect(Peer peer, boolean pooled, boolean replayable) throws IOException {
        long started = System.nanoTime();
        UpstreamPool.Idle idle = pooled ? peer.pool.take(started, replayable) : null;
        if (idle != null) return new Connection(peer, idle.wire(), true, idle.requests(), started);
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
     * Gives a connection whose exchange ended cleanly back to its pool, or closes it if
     * the pool won't have it ({@link UpstreamPool#giveBack}).
     */
    void release(Connection c) {
        Wire w = c.wire();
        w.shrink(); // keeps its small read buffer: the next exchange needs one at once
        if (!c.end()) return; // already ended
        if (!c.peer().pool.giveBack(w, c.requests + 1)) w.close();
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
    void close() {
        List<Peer> all;
        synchronized (this) {
            closed = true;
            all = peers;
        }
        maintenance.interrupt();
        for (Peer p : all) p.pool.close();
    }
}
