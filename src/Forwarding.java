import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.List;
import java.util.Locale;
import java.util.function.Supplier;
import java.util.function.UnaryOperator;

/**
 * Rewrites heads on their way through the proxy, like nginx's proxy module: what the
 * upstream sees of a request and what the client sees of a response.
 *
 * <p>The order matters. First the hop-by-hop fields go (RFC 9110 7.6.1): they describe the
 * connection the message came in on, not the message. Only then are the configured fields
 * applied (X-Real-IP, X-Forwarded-For, ...), so a client can neither remove them with
 * {@code Connection: X-Real-IP} nor supply its own: each configured field replaces every
 * field of that name the client sent. Last, the framing fields are generated from the
 * {@link Body} the proxy will actually send.
 */
final class Forwarding {
    /** Fields that belong to one connection, never forwarded (RFC 9110 7.6.1), plus the framing we regenerate. */
    private static final List<String> HOP_BY_HOP = List.of(
            "Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Transfer-Encoding", "Upgrade",
            "Content-Length");

    /**
     * What a client could write to make the app believe something about how it was
     * reached: taken out of requests from peers that are not trusted proxies
     * (set_real_ip_from), before the configured headers are applied. X-Forwarded-For stays,
     * and is appended to; X-Real-IP is set by the default configuration.
     */
    private static final List<String> FORGEABLE = List.of(
            "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-Proto", "X-Forwarded-Prefix", "Forwarded");

    /**
     * What this proxy calls itself in Via, after the version of the request it received
     * (RFC 9110 7.6.3: received-protocol, then received-by, which may be a pseudonym).
     */
    private static final String VIA_BY = " proxy";

    private Forwarding() {}

    /** Removes Connection, the fields it nominates, and the other hop-by-hop fields, in one pass. */
    static void removeHopByHop(Headers h) {
        List<String> nominated = h.tokens("Connection");
        h.removeIf(f -> containsIgnoreCase(HOP_BY_HOP, f.name()) || containsIgnoreCase(nominated, f.name()));
    }

    private static boolean containsIgnoreCase(List<String> names, String name) {
        for (String n : names) {
            if (n.equalsIgnoreCase(name)) return true;
        }
        return false;
    }

    /**
     * The head sent upstream for this request.
     *
     * @param upgrade the Upgrade value to pass on (a WebSocket handshake), or null
     * @param close   whether to ask the upstream to close the connection after its response
     * @param requestId the exchange's $request_id (made on first use, the same in the access log)
     */
    static byte[] requestHead(HttpParser.Request req, Body body, InetSocketAddress peer, InetAddress client,
                              Config config, Config.Server server, String upgrade, boolean close,
                              Supplier<String> requestId) {
        return requestHead(req, body, peer, client, config, server, upgrade, close, requestId, "http");
    }

    /** The same, for a request that came over {@code scheme} ($scheme: "https" on a TLS listener). */
    static byte[] requestHead(HttpParser.Request req, Body body, InetSocketAddress peer, InetAddress client,
                              Config config, Config.Server server, String upgrade, boolean close,
                              Supplier<String> requestId, String scheme) {
        Headers h = req.headers();
        removeHopByHop(h);
        boolean trusted = config.setRealIpFrom().trusts(peer.getAddress());
        if (!trusted) h.removeIf(f -> containsIgnoreCase(FORGEABLE, f.name()));
        // RFC 9110 7.6.3: a gateway MUST send Via in each inbound request. It is added before
        // the configured fields, so "header.Via =" in the config can still remove it.
        List<String> via = h.all("Via");
        String self = (req.http11() ? "1.1" : "1.0") + VIA_BY;
        h.set("Via", via.isEmpty() ? self : String.join(", ", via) + ", " + self);

        for (var field : config.headers().entrySet()) {
            String value = expand(field.getValue(), name -> variable(name, req, h, peer, client, trusted, requestId, scheme));
            h.remove(field.getKey());
            if (!value.isEmpty()) h.add(field.getKey(), value);
        }
        // HTTP/1.1 requires Host (RFC 9112 3.2); an HTTP/1.0 client may not have sent one.
        if (!h.has("Host")) h.add("Host", server.hostPort());

        if (upgrade != null) {
            h.add("Upgrade", upgrade);
            h.add("Connection", "upgrade");
        } else if (close) {
            h.add("Connection", "close");
        }
        addFraming(h, body);

        StringBuilder out = new StringBuilder(256);
        out.append(req.method()).append(' ').append(req.target()).append(" HTTP/1.1\r\n");
        h.appendTo(out);
        return Headers.bytes(out.append("\r\n"));
    }

    /**
     * The head sent to the client for this response.
     *
     * @param out        how the proxy will frame the body it sends
     * @param keepAlive  whether the client connection stays open afterwards
     */
    static byte[] responseHead(HttpParser.Response resp, Body out, boolean keepAlive, boolean upgrade) {
        Headers h = resp.headers();
        // A HEAD or 304 response keeps its Content-Length: it describes the representation
        // (RFC 9110 8.6), not this message, whose body is empty either way.
        List<String> lengths = h.all("Content-Length");
        String representationLength = lengths.size() == 1 && lengths.get(0).length() <= 18
                && HttpParser.isDigits(lengths.get(0)) ? lengths.get(0) : null; // else dropped
        String upgradeTo = h.first("Upgrade");
        removeHopByHop(h);
        if (!h.has("Date")) h.add("Date", HttpDate.now()); // RFC 9110 6.6.1: a recipient with a clock adds it

        if (upgrade) {
            h.add("Upgrade", upgradeTo);
            h.add("Connection", "upgrade");
        } else {
            if (out instanceof Body.Empty && representationLength != null && resp.status() != 204 && resp.status() >= 200) {
                h.add("Content-Length", representationLength);
            }
            addFraming(h, out);
            if (!keepAlive) h.add("Connection", "close");
        }
        StringBuilder sb = new StringBuilder(256);
        sb.append("HTTP/1.1 ").append(resp.status()).append(' ').append(resp.reason()).append("\r\n");
        h.appendTo(sb);
        return Headers.bytes(sb.append("\r\n"));
    }

    /** An interim (1xx) response, forwarded as it came less its hop-by-hop fields (RFC 9110 15.2). */
    static byte[] interimHead(HttpParser.Response resp) {
        Headers h = resp.headers();
        removeHopByHop(h);
        StringBuilder sb = new StringBuilder(64);
        sb.append("HTTP/1.1 ").append(resp.status()).append(' ').append(resp.reason()).append("\r\n");
        h.appendTo(sb);
        return Headers.bytes(sb.append("\r\n"));
    }

    /** A response the proxy makes itself: an error, with a short text body (none for HEAD). */
    static byte[] errorResponse(int status, boolean close, boolean head) {
        String body = errorBody(status);
        return Headers.bytes(new StringBuilder(160)
                .append("HTTP/1.1 ").append(status).append(' ').append(HttpError.reasonPhrase(status)).append("\r\n")
                .append("Date: ").append(HttpDate.now()).append("\r\n")
                .append("Content-Type: text/plain\r\n")
                .append("Content-Length: ").append(body.length()).append("\r\n")
                .append(close ? "Connection: close\r\n" : "")
                .append("\r\n").append(head ? "" : body));
    }

    /** The text of an error response: "502 Bad Gateway" and a newline. */
    static String errorBody(int status) {
        return status + " " + HttpError.reasonPhrase(status) + "\n";
    }

    private static void addFraming(Headers h, Body body) {
        switch (body) {
            case Body.Length l -> h.add("Content-Length", Long.toString(l.bytes()));
            case Body.Chunked c -> h.add("Transfer-Encoding", "chunked");
            case Body.Empty e -> { }
            case Body.UntilClose u -> { }
        }
    }

    /** nginx's $proxy_add_x_forwarded_for: the fields that came in, joined, then the peer. */
    private static String appendForwardedFor(List<String> incoming, InetSocketAddress peer) {
        String addr = ip(peer);
        return incoming.isEmpty() ? addr : String.join(", ", incoming) + ", " + addr;
    }

    /**
     * RFC 7239's Forwarded: this hop (for= the peer, proto=, host=), after the hops a
     * trusted proxy reported (from anyone else, Forwarded was removed: FORGEABLE).
     */
    private static String forwarded(List<String> incoming, InetSocketAddress peer, String host, String scheme) {
        String addr = ip(peer);
        String node = addr.contains(":") ? "\"[" + addr + "]\"" : addr; // RFC 7239 6: IPv6 quoted, in brackets
        StringBuilder hop = new StringBuilder("for=").append(node).append(";proto=").append(scheme);
        if (host != null) hop.append(";host=").append(isToken(host) ? host : "\"" + host + "\"");
        return incoming.isEmpty() ? hop.toString() : String.join(", ", incoming) + ", " + hop;
    }

    private static boolean isToken(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (!(Character.isLetterOrDigit(c) && c < 0x80) && "!#$%&'*+-.^_`|~".indexOf(c) < 0) return false;
        }
        return !s.isEmpty();
    }

    /** One variable of a header template (nginx's names), computed only when used. */
    private static String variable(String name, HttpParser.Request req, Headers h, InetSocketAddress peer,
                                   InetAddress client, boolean trusted, Supplier<String> requestId, String scheme) {
        return switch (name) {
            case "$remote_addr" -> ip(client); // the client's, behind trusted proxies (RealIp)
            case "$remote_port" -> Integer.toString(peer.getPort());
            case "$scheme" -> scheme;
            case "$host" -> req.host() == null ? "" : HttpParser.hostName(req.host());
            // The Host we validated, even if the client named it in Connection (which would
            // otherwise let it pick the virtual host the upstream sees).
            case "$http_host" -> orEmpty(req.host());
            // Appended with the peer that connected: behind a trusted proxy, that proxy, whose
            // own entry names the client already (nginx appends $remote_addr, repeating it).
            case "$proxy_add_x_forwarded_for" -> appendForwardedFor(h.all("X-Forwarded-For"), peer);
            case "$forwarded" -> forwarded(trusted ? h.all("Forwarded") : List.of(), peer, req.host(), scheme);
            case "$request_id" -> requestId.get();
            default -> throw new IllegalArgumentException(name); // Config lets no other name through
        };
    }

    /**
     * Replaces each $variable ("$" and lowercase letters, digits or "_", as Config checks them) in
     * one pass, so a value is never expanded again. A "$" with no name after it stays.
     * Header templates and log_format ({@link LogFormat}) are both expanded here.
     */
    static String expand(String template, UnaryOperator<String> variables) {
        if (template.indexOf('$') < 0) return template;
        StringBuilder out = new StringBuilder(template.length() + 32);
        int done = 0;
        for (int dollar; (dollar = template.indexOf('$', done)) >= 0; ) {
            int end = dollar + 1;
            while (end < template.length() && isNameChar(template.charAt(end))) end++;
            out.append(template, done, dollar);
            out.append(end == dollar + 1 ? "$" : variables.apply(template.substring(dollar, end)));
            done = end;
        }
        return out.append(template, done, template.length()).toString();
    }

    private static boolean isNameChar(char c) {
        return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_';
    }

    /** An address as nginx prints $remote_addr: IPv6 in the short form of RFC 5952 ("::1"). */
    static String ip(InetSocketAddress peer) {
        return ip(peer.getAddress());
    }

    static String ip(InetAddress a) {
        if (!(a instanceof Inet6Address)) return a.getHostAddress();
        byte[] b = a.getAddress();
        int[] groups = new int[8];
        for (int i = 0; i < 8; i++) groups[i] = (b[2 * i] & 0xff) << 8 | b[2 * i + 1] & 0xff;
        int bestStart = -1, bestLength = 1; // only a run of two or more zero groups becomes "::"
        for (int i = 0; i < 8; ) {
            int j = i;
            while (j < 8 && groups[j] == 0) j++;
            if (j - i > bestLength) {
                bestStart = i;
                bestLength = j - i;
            }
            i = j == i ? i + 1 : j;
        }
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < 8; i++) {
            if (i == bestStart) {
                out.append("::");
                i += bestLength - 1;
            } else {
                if (out.length() > 0 && out.charAt(out.length() - 1) != ':') out.append(':');
                out.append(Integer.toHexString(groups[i]));
            }
        }
        return out.toString();
    }

    private static String orEmpty(String s) {
        return s == null ? "" : s;
    }

    /** The Date format of RFC 9110 5.6.7, made at most once a second. */
    static final class HttpDate {
        private static final DateTimeFormatter IMF_FIXDATE =
                DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss 'GMT'", Locale.US);
        private static volatile String cached = "";
        private static volatile long cachedSecond;

        static String now() {
            long second = System.currentTimeMillis() / 1000;
            if (second != cachedSecond) {
                cached = IMF_FIXDATE.format(ZonedDateTime.now(ZoneOffset.UTC));
                cachedSecond = second;
            }
            return cached;
        }
    }
}
