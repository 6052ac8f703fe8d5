import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * Upstream servers given by host name, followed as their addresses change: an app in a
 * container gets a new address each time it is recreated, and the proxy must follow it
 * without a restart of its own (nginx: {@code resolver ... valid=30s} and
 * {@code server app:5000 resolve}). Every address a name has is used: each is a peer of its
 * own in {@link Upstreams}, with the server's weight and its own failures (max_fails).
 *
 * <ul>
 * <li>At start, a name that can't be resolved stops the proxy, as nginx refuses to start
 *     ({@link Config} says so; so does {@code --check}). Here each name is looked up once
 *     more, for all of its addresses: Config keeps the first only.
 * <li>Then every resolve_interval one virtual thread looks each name up again, off the
 *     request path: no request ever waits on DNS. A change is handed to
 *     {@link Upstreams#readdress}: new addresses get peers, the peers of addresses that went
 *     away get no new requests, and their idle connections are closed. The error log says
 *     what changed.
 * <li>A name that fails to resolve later keeps the addresses it had (the app may be
 *     restarting; a DNS server may be down). The error log says so once, not at every
 *     attempt, and once more when the name resolves again.
 * <li>Java caches each answer for 30 s (the security property networkaddress.cache.ttl,
 *     or -Dsun.net.inetaddr.ttl=N), and a failure for 10 s: looking a name up more often
 *     than that gets the cached answer. Hence the default resolve_interval, 30s;
 *     resolve_interval = 0 resolves the names at start only.
 * </ul>
 */
final class Resolver implements AutoCloseable {
    /** How a name becomes its addresses: the system's resolver, or a test's answers. */
    interface Lookup {
        InetAddress[] addresses(String host) throws UnknownHostException;
    }

    static final Lookup SYSTEM = InetAddress::getAllByName;

    /** A server given by name, and what is known of it. Used by the resolver's thread only. */
    private static final class Name {
        final Config.Server server;
        List<InetSocketAddress> addresses; // the last answer: what Upstreams has now
        boolean failing;                   // the last lookup failed (and the error log said so)

        Name(Config.Server server) {
            this.server = server;
            this.addresses = List.of(server.address()); // Config's, until the first lookup here
        }
    }

    private final Upstreams upstreams;
    private final Log log;
    private final Lookup lookup;
    private final List<Name> names;
    private Thread thread; // null with resolve_interval = 0

    private Resolver(Upstreams upstreams, Log log, Lookup lookup, List<Name> names) {
        this.upstreams = upstreams;
        this.log = log;
        this.lookup = lookup;
        this.names = names;
    }

    /**
     * Looks every name up for all its addresses, then starts the thread that does it again
     * every resolve_interval. Null when no server is given by name: then there is nothing to do.
     */
    static Resolver start(Config config, Upstreams upstreams, Log log, Lookup lookup) {
        List<Name> names = config.upstream().stream().filter(s -> s.name() != null).map(Name::new).toList();
        if (names.isEmpty()) return null;
        Resolver resolver = new Resolver(upstreams, log, lookup, names);
        names.forEach(resolver::resolve);
        Duration interval = config.resolveInterval();
        if (!interval.isZero()) resolver.thread = Thread.ofVirtual().name("resolver").start(() -> resolver.run(interval));
        return resolver;
    }

    private void run(Duration interval) {
        try {
            while (true) {
                Thread.sleep(interval);
                names.forEach(this::resolve);
            }
        } catch (InterruptedException e) {
            // close: shutting down
        }
    }

    /** Looks one name up; a new set of addresses goes to Upstreams, a failure keeps the old. */
    private void resolve(Name n) {
        String host = n.server.name();
        List<InetSocketAddress> now;
        try {
            now = Arrays.stream(lookup.addresses(host)).distinct().map(a -> at(host, a, n.server.address().getPort())).toList();
            if (now.isEmpty()) throw new UnknownHostException(host + ": no address");
        } catch (UnknownHostException | RuntimeException e) {
            if (!n.failing) {
                log.error("upstream " + n.server.hostPort() + ": cannot resolve " + host + " (" + e.getMessage()
                        + "); keeping its last known addresses " + ips(n.addresses) + " until it resolves again");
            }
            n.failing = true;
            return;
        }
        if (n.failing) log.notice("upstream " + n.server.hostPort() + ": " + host + " resolves again");
        n.failing = false;
        if (Set.copyOf(now).equals(Set.copyOf(n.addresses))) return; // the same, maybe in another order
        log.notice("upstream " + n.server.hostPort() + ": now at " + ips(now) + ", was at " + ips(n.addresses));
        upstreams.readdress(n.server, now);
        n.addresses = now;
    }

    /** The address with the name it was looked up by, so that it still says which server it is (Host, logs). */
    private static InetSocketAddress at(String host, InetAddress a, int port) {
        try {
            return new InetSocketAddress(InetAddress.getByAddress(host, a.getAddress()), port);
        } catch (UnknownHostException e) {
            throw new IllegalArgumentException("not an IP address: " + a, e); // never: the bytes are an InetAddress's
        }
    }

    private static List<String> ips(List<InetSocketAddress> addresses) {
        return addresses.stream().map(Forwarding::ip).toList();
    }

    /** Stops the thread; a lookup under way ends first (the system's can't be interrupted). */
    @Override
    public void close() {
        if (thread != null) thread.interrupt();
    }
}
