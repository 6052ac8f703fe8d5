import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.BindException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * Upstream servers given by host name ({@link Resolver}): every address of a name gets
 * requests, each with failures of its own, and a name whose address changes is followed
 * within resolve_interval, without a restart. No real DNS: {@code localhost}, and answers
 * that a test gives and changes (the proxy's resolver is injectable). The two addresses
 * of a name are two backends on one port, one on 127.0.0.1 and one on ::1.
 */
@Timeout(30)
class ResolveTest {
    private static final long MS = 1_000_000L;
    private static final String GET = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    private static final String POST = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n";
    private static final InetAddress V4 = InetAddress.getLoopbackAddress();
    private static final InetAddress V6 = address("::1");

    static boolean ipv6Loopback() {
        return ListenTest.ipv6Loopback();
    }

    /** Whether the system resolves localhost to both 127.0.0.1 and ::1 (/etc/hosts often has only one). */
    static boolean localhostHasBothAddresses() {
        try {
            List<InetAddress> all = Arrays.asList(InetAddress.getAllByName("localhost"));
            return ipv6Loopback() && all.contains(V4) && all.contains(V6);
        } catch (UnknownHostException e) {
            return false;
        }
    }

    private static InetAddress address(String literal) {
        try {
            return InetAddress.getByName(literal);
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    /** Answers with its name as the body, so the client sees which server served it. */
    private static TestSupport.Handler named(String name) {
        return (r, out, s) -> {
            out.write(TestSupport.bytes("HTTP/1.1 200 OK\r\nContent-Length: " + name.length() + "\r\n\r\n" + name));
            return true;
        };
    }

    /** Two backends on one port: the first on 127.0.0.1, the second on ::1. */
    private static TestSupport.Backend[] onOnePort(TestSupport.Handler v4, TestSupport.Handler v6) throws IOException {
        for (int attempt = 0; ; attempt++) {
            var first = new TestSupport.Backend(v4, new InetSocketAddress(V4, 0));
            try {
                return new TestSupport.Backend[] {first, new TestSupport.Backend(v6, new InetSocketAddress(V6, first.port()))};
            } catch (BindException taken) { // the port is free on 127.0.0.1 but not on ::1: another one
                first.close();
                if (attempt == 10) throw taken;
            }
        }
    }

    /** The configuration of a proxy in front of localhost:port. */
    private static Config config(int port, String... keyValues) throws Exception {
        String[] all = Arrays.copyOf(keyValues, keyValues.length + 2);
        all[keyValues.length] = "upstream";
        all[keyValues.length + 1] = "localhost:" + port;
        return TestSupport.config(0, all);
    }

    /** A proxy that resolves names with this lookup. */
    private static Proxy start(Config config, Resolver.Lookup lookup) throws Exception {
        return Proxy.start(config, new BufferPool(config.bufferMemory()), lookup);
    }

    @Test
    @EnabledIf("localhostHasBothAddresses")
    void bothAddressesOfLocalhostGetRequests() throws Exception {
        var both = onOnePort(named("v4"), named("v6"));
        try (var v4 = both[0]; var v6 = both[1]; var proxy = start(config(v4.port()), Resolver.SYSTEM)) {
            StringBuilder served = new StringBuilder();
            for (int i = 0; i < 4; i++) served.append(TestSupport.exchange(TestSupport.port(proxy), GET).bodyText()).append(' ');
            assertEquals(2, v4.received.size(), "served: " + served);
            assertEquals(2, v6.received.size(), "served: " + served);
        }
    }

    @Test
    @EnabledIf("ipv6Loopback")
    void everyAddressOfANameIsAServerOfItsOwn() throws Exception {
        var both = onOnePort(named("v4"), (r, out, s) -> false); // ::1 reads the request and hangs up
        Config config = config(both[0].port(), "max_fails", "1", "fail_timeout", "30s");
        try (var v4 = both[0]; var v6 = both[1]; var proxy = start(config, host -> new InetAddress[] {V4, V6})) {
            int port = TestSupport.port(proxy);
            int failed = 0;
            for (int i = 0; i < 6; i++) if (TestSupport.exchange(port, POST).status() == 502) failed++;
            // Turns alternate between the two addresses until ::1 fails once (max_fails 1):
            // then it is out, and 127.0.0.1, a server of its own, is not.
            assertEquals(1, v6.connections.get(), "::1 got one request, failed it, and is out");
            assertEquals(1, failed);
            assertEquals(5, v4.received.size(), "127.0.0.1 served the rest");
            assertEquals(1, TestSupport.awaitCount(config, 1, "upstream localhost:" + v4.port() + ": now at [127.0.0.1, ::1], was at [127.0.0.1]"),
                    "the start found both addresses: " + TestSupport.errorLog(config));
        }
    }

    @Test
    void anAddressALookupFindsAfterTheStopKeepsNoConnection() throws Exception {
        // A lookup under way when the proxy stops still hands its answer over: the new
        // address's peer must not pool a connection that nothing would ever close.
        try (var backend = new TestSupport.Backend(); var moved = new TestSupport.Backend()) {
            Proxy proxy = start(config(backend.port()), host -> new InetAddress[] {V4});
            Upstreams upstreams = proxy.upstreams();
            proxy.close();
            upstreams.readdress(upstreams.peers().get(0).entry, List.of(new InetSocketAddress(V4, moved.port())));
            Upstreams.Peer peer = upstreams.peers().get(0);
            assertEquals(moved.port(), peer.server.address().getPort());
            Upstreams.Connection c = upstreams.connect(peer, true, true);
            upstreams.release(c); // as an exchange that ended cleanly gives it back
            assertEquals(0, upstreams.pool(peer)[1], "nothing is pooled after the stop");
            assertEquals(1, moved.nextEnded(), "the connection is closed");
        }
    }

    @Test
    @EnabledIf("ipv6Loopback")
    void requestsFollowANameToItsNewAddressAndTheOldOnesIdleConnectionsAreClosed() throws Exception {
        AtomicReference<InetAddress[]> answer = new AtomicReference<>(new InetAddress[] {V4});
        var both = onOnePort(named("v4"), named("v6"));
        Config config = config(both[0].port(), "resolve_interval", "200ms");
        try (var v4 = both[0]; var v6 = both[1]; var proxy = start(config, host -> answer.get());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            assertEquals("v4", client.send(GET).read().bodyText());
            assertEquals(1, v4.next().connection()); // and that connection is now idle in the pool

            long moved = System.nanoTime();
            answer.set(new InetAddress[] {V6}); // the app moved: the name has a new address
            assertEquals(1, v4.nextEnded(), "the old address's idle pooled connection is closed");
            long took = (System.nanoTime() - moved) / MS;
            assertTrue(took < 200 + 3000, "followed after " + took + " ms (resolve_interval 200 ms)");
            for (int i = 0; i < 3; i++) assertEquals("v6", client.send(GET).read().bodyText(), "request " + i);
            assertEquals(0, v4.received.size(), "no request went to the old address");
            assertEquals(3, v6.received.size());
            TestSupport.awaitText(Path.of(config.errorLog()), "now at [::1]"); // the log is written a moment later
            assertEquals(1, TestSupport.awaitCount(config, 1, "upstream localhost:" + v4.port() + ": now at [::1], was at [127.0.0.1]"));
        }
    }

    @Test
    void aNameThatStopsResolvingKeepsItsAddressesAndTheLogSaysSoOnce() throws Exception {
        Semaphore lookups = new Semaphore(0);
        AtomicReference<Boolean> resolves = new AtomicReference<>(true);
        Resolver.Lookup lookup = host -> {
            lookups.release();
            if (!resolves.get()) throw new UnknownHostException(host + ": Temporary failure in name resolution");
            return new InetAddress[] {V4};
        };
        try (var backend = new TestSupport.Backend(named("v4"))) {
            Config config = config(backend.port(), "resolve_interval", "100ms");
            try (var proxy = start(config, lookup)) {
                int port = TestSupport.port(proxy);
                assertTrue(lookups.tryAcquire(1, 10, TimeUnit.SECONDS), "looked up at start");
                resolves.set(false);
                assertTrue(lookups.tryAcquire(4, 10, TimeUnit.SECONDS), "looked up again, and again");
                assertEquals("v4", TestSupport.exchange(port, GET).bodyText(), "the last known address still serves");
                String failure = "upstream localhost:" + backend.port() + ": cannot resolve localhost (localhost: Temporary failure"
                        + " in name resolution); keeping its last known addresses [127.0.0.1] until it resolves again";
                assertEquals(1, TestSupport.awaitCount(config, 1, failure), "one line for four failed lookups: " + TestSupport.errorLog(config));

                resolves.set(true);
                // Three more lookups: the third begins once the second, which resolved, has logged.
                assertTrue(lookups.tryAcquire(3, 10, TimeUnit.SECONDS));
                assertEquals(1, TestSupport.awaitCount(config, 1, "upstream localhost:" + backend.port() + ": localhost resolves again"));
                assertEquals(1, TestSupport.awaitCount(config, 1, failure));
                assertEquals("v4", TestSupport.exchange(port, GET).bodyText());
            }
        }
    }

    @Test
    void withResolveIntervalZeroANameIsLookedUpAtStartOnlyAndAnAddressNever() throws Exception {
        Semaphore lookups = new Semaphore(0);
        Resolver.Lookup lookup = host -> {
            lookups.release();
            return new InetAddress[] {V4};
        };
        try (var backend = new TestSupport.Backend(named("v4"));
             var proxy = start(config(backend.port(), "resolve_interval", "0"), lookup)) {
            assertEquals("v4", TestSupport.exchange(TestSupport.port(proxy), GET).bodyText());
            assertEquals(1, lookups.availablePermits(), "looked up once, at start, before the first request");
            // An absence can't be waited for: give a re-resolution every chance to happen.
            assertFalse(lookups.tryAcquire(2, 500, TimeUnit.MILLISECONDS), "and never again");
        }
        lookups.drainPermits();
        try (var backend = new TestSupport.Backend(named("v4"));
             var proxy = start(TestSupport.config(backend.port()), lookup)) {
            assertEquals("v4", TestSupport.exchange(TestSupport.port(proxy), GET).bodyText());
            assertEquals(0, lookups.availablePermits(), "an upstream given by IP address is never looked up");
        }
    }
}
