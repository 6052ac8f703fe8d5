import java.io.IOException;
import java.net.SocketTimeoutException;
import java.net.StandardSocketOptions;
import java.nio.channels.SocketChannel;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

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
 * <li>Pool: up to {@code upstream_keepalive} idle connections per server, newest first.
 *     A connection goes back only after an exchange that ended cleanly, and is checked
 *     without blocking before reuse (the server may have closed it meanwhile).
 * </ul>
 */
final class Upstreams {
    /** One server's state. Guarded by the Upstreams lock. */
    static final class Peer {
        final Config.Server server;
        private int score;
        private volatile int fails;
        private long windowStart;  // nanoTime of the first failure counted in fails
        private volatile long downUntil; // nanoTime until which the server is out; 0 = up
        private final Deque<Wire> idle = new ArrayDeque<>();

        Peer(Config.Server server) {
            this.server = server;
        }
    }

    /** A connection to a server, and whether it was reused from the pool. */
    record Connection(Peer peer, Wire wire, boolean reused) {}

    private final Config config;
    private final List<Peer> peers = new ArrayList<>();

    Upstreams(Config config) {
        this.config = config;
        for (Config.Server s : config.upstream()) peers.add(new Peer(s));
    }

    /** Picks the next server, skipping the ones already tried for this request; null if none is left. */
    synchronized Peer choose(List<Peer> tried) {
        long now = System.nanoTime();
        Peer best = null;
        int total = 0;
        for (Peer p : peers) {
            if (tried.contains(p) || p.downUntil != 0 && now - p.downUntil < 0) continue;
            p.score += p.server.weight();
            total += p.server.weight();
            if (best == null || p.score > best.score) best = p;
        }
        if (best != null) {
            best.score -= total;
            return best;
        }
        for (Peer p : peers) { // all out: try the one that has been out longest
            if (!tried.contains(p) && (best == null || p.downUntil - best.downUntil < 0)) best = p;
        }
        return best;
    }

    /** A pooled connection to the peer if a usable one is idle (and {@code pooled}), else a new one. */
    Connection connect(Peer peer, boolean pooled) throws IOException {
        while (pooled) {
            Wire idle;
            synchronized (this) {
                idle = peer.idle.pollFirst();
            }
            if (idle == null) break;
            if (!idle.isStale()) return new Connection(peer, idle, true);
            idle.close();
        }
        SocketChannel channel = SocketChannel.open();
        try {
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            // A blocking SocketChannel.connect has no timeout, but its socket adaptor's
            // connect(address, timeout) does: that is our connect_timeout.
            channel.socket().connect(peer.server.address(), (int) config.connectTimeout().toMillis());
            return new Connection(peer, new Wire(channel, 4096, config.readTimeout(), config.sendTimeout()), false);
        } catch (SocketTimeoutException e) {
            channel.close();
            throw new Wire.Timeout("connect to " + peer.server.hostPort());
        } catch (IOException e) {
            channel.close();
            throw e;
        }
    }

    /** Gives a connection whose exchange ended cleanly back to the pool, or closes it. */
    void release(Connection c) {
        Wire w = c.wire();
        w.shrink();
        synchronized (this) {
            if (config.upstreamKeepalive() > 0) {
                c.peer().idle.addFirst(w);
                if (c.peer().idle.size() <= config.upstreamKeepalive()) return;
                w = c.peer().idle.pollLast(); // the pool is full: close the oldest
            }
        }
        w.close();
    }

    /** Counts a failed attempt (refused, timed out, reset) toward max_fails. */
    synchronized void failed(Peer p) {
        if (config.maxFails() == 0) return;
        long now = System.nanoTime();
        if (p.fails == 0 || now - p.windowStart > config.failTimeout().toNanos()) {
            p.fails = 0;
            p.windowStart = now;
        }
        if (++p.fails >= config.maxFails()) {
            p.downUntil = now + config.failTimeout().toNanos();
            p.fails = 0;
        }
    }

    /** A successful exchange brings a server back at once. */
    void succeeded(Peer p) {
        if (p.fails == 0 && p.downUntil == 0) return; // the common case, without taking the lock
        synchronized (this) {
            p.fails = 0;
            p.downUntil = 0;
        }
    }

    /** Closes every idle connection (at shutdown). */
    synchronized void closeIdle() {
        for (Peer p : peers) {
            p.idle.forEach(Wire::close);
            p.idle.clear();
        }
    }
}
