import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.nio.file.Files;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** Clients behind other proxies ({@link RealIp}, nginx's realip module), and what no client may forge. */
@Timeout(30)
class RealIpTest {
    private static InetAddress ip(String s) throws Exception {
        return InetAddress.getByName(s);
    }

    @Test
    void rangesOfBothFamilies() throws Exception {
        RealIp trusted = RealIp.parse("127.0.0.1, 10.0.0.0/8, fd00::/8, 192.168.1.128/25");
        assertTrue(trusted.trusts(ip("127.0.0.1")));
        assertFalse(trusted.trusts(ip("127.0.0.2")));
        assertTrue(trusted.trusts(ip("10.255.0.1")));
        assertFalse(trusted.trusts(ip("11.0.0.1")));
        assertTrue(trusted.trusts(ip("fd12:3456::1")));
        assertFalse(trusted.trusts(ip("fe80::1")));
        assertTrue(trusted.trusts(ip("192.168.1.200")));
        assertFalse(trusted.trusts(ip("192.168.1.100")));
        assertThrows(IllegalArgumentException.class, () -> RealIp.parse("10.0.0.0/33"));
        assertThrows(IllegalArgumentException.class, () -> RealIp.parse("example.com"), "no name is looked up");
        assertThrows(IllegalArgumentException.class, () -> RealIp.parse("10.0.0"));
        var e = assertThrows(Config.Invalid.class, () -> Config.from(Map.of("set_real_ip_from", "10.0.0.0/8, bad"), "test"));
        assertTrue(e.getMessage().contains("'set_real_ip_from'") && e.getMessage().contains("'bad'"), e.getMessage());
    }

    @Test
    void theClientIsTheLastUntrustedAddressFromTheRight() throws Exception {
        RealIp trusted = RealIp.parse("127.0.0.1, 10.0.0.0/8");
        InetAddress lb = ip("127.0.0.1");
        assertEquals(ip("203.0.113.7"), trusted.client(lb, List.of("198.51.100.1, 203.0.113.7, 10.0.0.2")),
                "10.0.0.2 is ours; 203.0.113.7 is the first we can't vouch for; left of it, anyone's word");
        assertEquals(ip("203.0.113.7"), trusted.client(lb, List.of("198.51.100.1", "203.0.113.7")), "several fields, in order");
        assertEquals(ip("10.0.0.3"), trusted.client(lb, List.of("10.0.0.3, 10.0.0.2")), "all trusted: the first");
        assertEquals(ip("10.0.0.2"), trusted.client(lb, List.of("junk, 10.0.0.2")), "not an address: the walk stops");
        assertEquals(lb, trusted.client(lb, List.of()), "no header: the peer");
        assertEquals(ip("192.0.2.9"), trusted.client(ip("192.0.2.9"), List.of("203.0.113.7")), "an untrusted peer is the client");
        assertEquals(ip("2001:db8::1"), trusted.client(lb, List.of("2001:db8::1")));
    }

    @Test
    void behindATrustedProxyTheAppSeesTheClient() throws Exception {
        var log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(),
                "set_real_ip_from", "127.0.0.1", "header.Forwarded", "$forwarded", "access_log", log.toString());
             var client = new TestSupport.Client(TestSupport.port(proxy))) {
            client.send("GET / HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 203.0.113.7\r\n"
                    + "X-Forwarded-Host: app.example\r\nForwarded: for=203.0.113.7;proto=https\r\nConnection: close\r\n\r\n");
            assertEquals(200, client.read().status());
            var got = backend.next();
            assertEquals("203.0.113.7", got.header("X-Real-IP"), "$remote_addr: the client the trusted proxy named");
            assertEquals("203.0.113.7, 127.0.0.1", got.header("X-Forwarded-For"), "appended with the peer that connected");
            assertEquals("app.example", got.header("X-Forwarded-Host"), "a trusted proxy's X-Forwarded-Host stays");
            assertEquals("for=203.0.113.7;proto=https, for=127.0.0.1;proto=http;host=app.example", got.header("Forwarded"));
            assertTrue(client.closedByPeer());
            assertTrue(TestSupport.awaitLines(log, 1).startsWith("203.0.113.7 - - ["), "the access log names the client too");
        }
    }

    @Test
    void fromAnyoneElseTheForgeableHeadersAreRemoved() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(),
                "set_real_ip_from", "10.0.0.0/8", "header.Forwarded", "$forwarded")) {
            TestSupport.exchange(TestSupport.port(proxy), "GET / HTTP/1.1\r\nHost: a:8080\r\nX-Forwarded-For: 203.0.113.7\r\n"
                    + "X-Forwarded-Host: evil\r\nX-Forwarded-Port: 443\r\nx-forwarded-prefix: /admin\r\n"
                    + "X-Forwarded-Proto: https\r\nForwarded: for=1.2.3.4\r\n\r\n");
            var got = backend.next();
            assertEquals("127.0.0.1", got.header("X-Real-IP"), "not trusted: the peer is the client");
            assertEquals("203.0.113.7, 127.0.0.1", got.header("X-Forwarded-For"), "always kept and appended to");
            assertNull(got.header("X-Forwarded-Host"));
            assertNull(got.header("X-Forwarded-Port"));
            assertNull(got.header("X-Forwarded-Prefix"));
            assertEquals("http", got.header("X-Forwarded-Proto"), "ours, not the client's");
            assertEquals("for=127.0.0.1;proto=http;host=\"a:8080\"", got.header("Forwarded"), "only our hop; a host with a port is quoted");
        }
    }

    @Test
    void anIpv6PeerIsQuotedAndBracketedInForwarded() throws Exception {
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(backend.port(),
                "listen", "[::1]:0", "header.Forwarded", "$forwarded");
             var s = new java.net.Socket("::1", TestSupport.port(proxy))) {
            s.getOutputStream().write(TestSupport.bytes("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
            s.getInputStream().readAllBytes();
            assertEquals("for=\"[::1]\";proto=http;host=a", backend.next().header("Forwarded"));
        }
    }

    @Test
    void theAccessLogNamesTheClientOfAnswersTheProxyGivesItself() throws Exception {
        // A route's return, the 301 to a prefix's '/' and a 413: no upstream, the same client.
        var log = Files.createTempFile(TestSupport.TEMP, "access", ".log");
        try (var backend = new TestSupport.Backend(); var proxy = TestSupport.proxy(0,
                "upstream.app", "127.0.0.1:" + backend.port(), "route.app", "/app/ -> app",
                "route.gone", "/gone/", "route.gone.return", "410 gone", "client_max_body_size", "10",
                "set_real_ip_from", "127.0.0.1", "access_log", log.toString(), "log_format", "$remote_addr $status")) {
            int port = TestSupport.port(proxy);
            String xff = "Host: a\r\nX-Forwarded-For: 203.0.113.7\r\n";
            assertEquals(410, TestSupport.exchange(port, "GET /gone/x HTTP/1.1\r\n" + xff + "\r\n").status());
            assertEquals(301, TestSupport.exchange(port, "GET /app HTTP/1.1\r\n" + xff + "\r\n").status());
            assertEquals(413, TestSupport.exchange(port, "POST /app/x HTTP/1.1\r\n" + xff
                    + "Content-Length: 11\r\n\r\n01234567890").status());
            assertEquals("203.0.113.7 410\n203.0.113.7 301\n203.0.113.7 413\n", TestSupport.awaitLines(log, 3));
        }
    }
}
