import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.Base64;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.function.Function;
import java.util.function.Supplier;

/**
 * What an access log line says: the {@code log_format} template, filled in with nginx's
 * variables when an exchange ends. The default is nginx's "combined" format, the one log
 * analysers (goaccess, awstats) read without being told:
 *
 * <pre>  $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"</pre>
 *
 * <p>A template is expanded as a header template is ({@link Forwarding#expand}: the same
 * $name syntax, one pass). Each value is escaped as nginx escapes it: '"', '\' and every
 * byte outside printable ASCII become \xHH, so a client can't forge a line or a field. A
 * value that is empty or unknown (no Referer, no upstream contacted) is "-".
 */
final class LogFormat {
    /** One upstream server tried for a request: its status (0 = none came) and the time it took. */
    record Attempt(Config.Server server, int status, long nanos) {}

    /**
     * What the log knows of an exchange as it ends. {@code request} is null if the head was
     * rejected before it parsed, {@code upstreams} null if no server was tried, {@code gzipRatio}
     * null if the response was not compressed.
     */
    record Entry(InetSocketAddress peer, String requestLine, HttpParser.Request request, int status,
                 long bodyBytesSent, long nanos, List<Attempt> upstreams, Supplier<String> requestId,
                 String gzipRatio, String route, String upstreamName,
                 TlsChannel tls) {} // tls: null on a plain listener

    private static final DateTimeFormatter TIME_LOCAL = DateTimeFormatter.ofPattern("dd/MMM/yyyy:HH:mm:ss Z", Locale.US);
    private static final DateTimeFormatter TIME_ISO8601 = DateTimeFormatter.ofPattern("yyyy-MM-dd'T'HH:mm:ssxxx", Locale.US);

    private final String template;

    LogFormat(String template) {
        this.template = template;
    }

    /** The line for this exchange, newline included. */
    String line(Entry e) {
        return Forwarding.expand(template, name -> escape(variable(name, e))) + "\n";
    }

    /** One variable's value (nginx's names; Config lets no other through), or null if it has none. */
    private static String variable(String name, Entry e) {
        HttpParser.Request r = e.request();
        return switch (name) {
            case "$remote_addr" -> Forwarding.ip(e.peer());
            case "$remote_user" -> r == null ? null : basicAuthUser(r.headers().first("Authorization"));
            case "$time_local" -> Stamp.now().local;
            case "$time_iso8601" -> Stamp.now().iso8601;
            case "$request" -> e.requestLine();
            case "$status" -> Integer.toString(e.status());
            case "$body_bytes_sent" -> Long.toString(e.bodyBytesSent());
            case "$http_referer" -> r == null ? null : r.headers().first("Referer");
            case "$http_user_agent" -> r == null ? null : r.headers().first("User-Agent");
            case "$host" -> r == null || r.host() == null ? null : HttpParser.hostName(r.host());
            case "$request_time" -> seconds(e.nanos());
            // As nginx: with several servers tried, their values in order, separated by ", ".
            case "$upstream_addr" -> eachUpstream(e, a -> a.server().hostPort());
            case "$upstream_status" -> eachUpstream(e, a -> a.status() == 0 ? "-" : Integer.toString(a.status()));
            case "$upstream_response_time" -> eachUpstream(e, a -> seconds(a.nanos()));
            case "$request_id" -> e.requestId().get();
            case "$gzip_ratio" -> e.gzipRatio(); // original over compressed size (Gzip.ratio)
            case "$route" -> e.route(); // route.NAME's name; none for the default group
            case "$upstream_name" -> e.upstreamName(); // the group, "default" for the unnamed one
            case "$scheme" -> e.tls() == null ? "http" : "https";
            case "$ssl_protocol" -> e.tls() == null ? null : e.tls().protocol();
            case "$ssl_cipher" -> e.tls() == null ? null : e.tls().cipher();
            case "$ssl_server_name" -> e.tls() == null ? null : e.tls().serverName();
            default -> throw new IllegalArgumentException(name);
        };
    }

    private static String eachUpstream(Entry e, Function<Attempt, String> value) {
        if (e.upstreams() == null) return null;
        if (e.upstreams().size() == 1) return value.apply(e.upstreams().get(0));
        StringBuilder out = new StringBuilder();
        for (Attempt a : e.upstreams()) out.append(out.isEmpty() ? "" : ", ").append(value.apply(a));
        return out.toString();
    }

    /** Seconds with millisecond resolution, as nginx prints times: "0.004". */
    private static String seconds(long nanos) {
        long ms = Math.max(0, nanos / 1_000_000);
        String frac = Long.toString(1000 + ms % 1000).substring(1);
        return ms / 1000 + "." + frac;
    }

    /** nginx's $remote_user: the user name of "Authorization: Basic ..." (RFC 7617), checked or not. */
    private static String basicAuthUser(String authorization) {
        if (authorization == null || !authorization.regionMatches(true, 0, "Basic ", 0, 6)) return null;
        try {
            String pair = new String(Base64.getDecoder().decode(authorization.substring(6).strip()), StandardCharsets.ISO_8859_1);
            int colon = pair.indexOf(':');
            return colon < 0 ? null : pair.substring(0, colon);
        } catch (IllegalArgumentException notBase64) {
            return null;
        }
    }

    /** nginx's escaping of a variable's value: '"', '\' and bytes outside printable ASCII as \xHH; "-" if empty. */
    static String escape(String s) {
        if (s == null || s.isEmpty()) return "-";
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return hexEscaped(s, true);
        }
        return s;
    }

    /** Control characters only as \xHH: an error log message stays one line. */
    static String escapeControls(String s) {
        return hexEscaped(s, false);
    }

    private static String hexEscaped(String s, boolean all) {
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            boolean escape = c < 0x20 || c == 0x7f || all && (c > 0x7e || c == '"' || c == '\\');
            if (!escape) {
                b.append(c);
            } else {
                // Heads are read as ISO-8859-1, so every char of a request is one byte; any
                // other char (from a message) goes out as its UTF-8 bytes.
                for (byte x : (c <= 0xff ? new byte[] {(byte) c} : String.valueOf(c).getBytes(StandardCharsets.UTF_8))) {
                    b.append("\\x").append(Character.toUpperCase(Character.forDigit((x >> 4) & 0xf, 16)))
                            .append(Character.toUpperCase(Character.forDigit(x & 0xf, 16)));
                }
            }
        }
        return b.toString();
    }

    // ---- $request_id ------------------------------------------------------------------

    private static final SplittableRandom IDS = new SplittableRandom(new SecureRandom().nextLong());
    private static final char[] HEX = "0123456789abcdef".toCharArray();

    /**
     * A new $request_id: 32 hex digits, as nginx makes them. Unique, not secret: one
     * generator for the process, seeded once from SecureRandom; its period of 2^64 means no
     * two requests of a process get the same id, and the seed that two processes don't.
     * Made only when a header template or log_format uses it.
     */
    static String newRequestId() {
        long high, low;
        synchronized (IDS) {
            high = IDS.nextLong();
            low = IDS.nextLong();
        }
        char[] id = new char[32];
        for (int i = 0; i < 16; i++) {
            id[15 - i] = HEX[(int) (high >>> 4 * i) & 0xf];
            id[31 - i] = HEX[(int) (low >>> 4 * i) & 0xf];
        }
        return new String(id);
    }

    // ---- $time_local, $time_iso8601 -----------------------------------------------------

    /** The two time formats of this second, made at most once a second. */
    private record Stamp(long second, String local, String iso8601) {
        private static volatile Stamp cached = new Stamp(Long.MIN_VALUE, "", "");

        static Stamp now() {
            long second = System.currentTimeMillis() / 1000;
            Stamp s = cached;
            if (s.second != second) {
                ZonedDateTime t = ZonedDateTime.ofInstant(Instant.ofEpochSecond(second), ZoneId.systemDefault());
                cached = s = new Stamp(second, TIME_LOCAL.format(t), TIME_ISO8601.format(t));
            }
            return s;
        }
    }
}
