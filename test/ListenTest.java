import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.condition.EnabledIf;

/**
 * The listen addresses: the shipped dual-stack {@code [::]}, several addresses at once, and
 * what an IPv6 client looks like upstream ({@code $remote_addr} in the short form, as nginx
 * prints it). Clients connect only to 127.0.0.1 and ::1.
 */
@Timeout(30)
class ListenTest {

    /** Whether this machine has an IPv6 loopback; the IPv6 tests are skipped without one. */
    static boolean ipv6Loopback() {
        try (ServerSocket s = new ServerSocket()) {
            s.bind(new InetSocketAddress("::1", 0));
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** A response as read off a raw socket: the status and the Content-Length body. */
    record Reply(int status, String body) {}

    /** One request to host:port on a new connection (TestSupport.Client only knows 127.0.0.1). */
    static Reply get(String host, int port, String extraHeaders) throws IOException {
        try (Socket s = new Socket(host, port)) {
            s.setSoTimeout((int) TestSupport.WAIT.toMillis());
            s.getOutputStream().write(TestSupport.bytes("GET / HTTP/1.1\r\nHost: a\r\n" + extraHeaders
                    + "Connection: close\r\n\r\n"));
            InputStream in = s.getInputStream();
            String head = TestSupport.readHead(in);
            if (head == null) throw new IOException("closed without a response");
            var r = new TestSupport.Received(head, null, null, 0);
            byte[] body = TestSupport.readExactly(in, Integer.parseInt(r.header("Content-Length")));
            return new Reply(Integer.parseInt(head.substring(9, 12)), TestSupport.text(body));
        }
    }

    @Test
    @EnabledIf("ipv6Loopback")
    void theShippedDualStackListenServesIPv4AndIPv6Clients() throws Exception {
        // The shipped address with port 0: "[::]:8080" becomes "[::]:0".
        var shipped = Config.load(Path.of("conf/proxy.properties")).listen();
        assertEquals(1, shipped.size());
        String listen = Config.hostPort(new InetSocketAddress(shipped.get(0).getAddress(), 0));
        assertEquals("[::]:0", listen, "the shipped file listens on every IPv6 and IPv4 address");
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "listen", listen)) {
            int port = TestSupport.port(proxy);
            for (String client : List.of("127.0.0.1", "::1")) {
                assertEquals(new Reply(200, "Hello"), get(client, port, ""), "over " + client);
                var seen = backend.next();
                // An IPv4 client of the dual-stack socket is 127.0.0.1 upstream, not ::ffff:127.0.0.1.
                assertEquals(client, seen.header("X-Real-IP"), "over " + client);
                assertEquals(client, seen.header("X-Forwarded-For"), "over " + client);
            }
        }
    }

    @Test
    @EnabledIf("ipv6Loopback")
    void anIPv6ClientIsItsShortFormUpstream() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "listen", "[::1]:0")) {
            int port = TestSupport.port(proxy);
            assertEquals(new Reply(200, "Hello"), get("::1", port, "X-Forwarded-For: 192.0.2.7\r\n"));
            var seen = backend.next();
            assertEquals("::1", seen.header("X-Real-IP"), "$remote_addr as nginx prints it (RFC 5952), not 0:0:0:0:0:0:0:1");
            assertEquals("192.0.2.7, ::1", seen.header("X-Forwarded-For"), "$proxy_add_x_forwarded_for");
        }
    }

    @Test
    void eachOfSeveralListenAddressesServes() throws Exception {
        String listen = ipv6Loopback() ? "127.0.0.1:0, 127.0.0.1:0, [::1]:0" : "127.0.0.1:0, 127.0.0.1:0";
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(), "listen", listen)) {
            List<InetSocketAddress> bound = proxy.boundAddresses();
            assertEquals(listen.split(",").length, bound.size(), "every address is bound: " + bound);
            assertNotEquals(bound.get(0).getPort(), bound.get(1).getPort());
            for (InetSocketAddress address : bound) {
                String host = address.getAddress().getHostAddress();
                assertEquals(new Reply(200, "Hello"), get(host, address.getPort(), ""), "on " + Config.hostPort(address));
                assertEquals("GET / HTTP/1.1", backend.next().requestLine());
            }
        }
    }
}
