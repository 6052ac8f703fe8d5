import java.io.IOException;
import java.io.Reader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The proxy's settings: one {@code .properties} file whose keys follow nginx's directive
 * names (proxy_read_timeout becomes read_timeout, and so on). Every default lives here, and
 * every key is documented once, in conf/proxy.properties.
 *
 * <p>A bad file never half-starts the proxy: {@link #load} checks every key and value and
 * throws {@link Invalid} with one message naming the file, the key and what is wrong.
 */
record Config(
        List<InetSocketAddress> listen,
        List<Server> upstream,
        Duration connectTimeout,
        Duration readTimeout,
        Duration sendTimeout,
        Duration clientHeaderTimeout,
        Duration clientBodyTimeout,
        Duration keepaliveTimeout,
        int upstreamKeepalive,
        Duration upstreamKeepaliveTimeout,
        int maxFails,
        Duration failTimeout,
        long clientMaxBodySize, // 0 = unlimited
        int maxRequestLine,
        int maxHeaderSize,
        int maxConnections,
        long bufferMemory,      // bytes for all transfer buffers together (BufferPool)
        String accessLog,       // a path, "-" for stdout, or "off"
        String logFormat,       // the access log's template of $variables (LogFormat)
        String errorLog,        // a path or "-" for stderr
        Log.Level errorLogLevel, // the least severe level written
        Map<String, String> headers) { // header name -> template; "" removes the header

    /** One upstream server, as in nginx's {@code server 127.0.0.1:5000 weight=2;}. */
    record Server(InetSocketAddress address, int weight) {
        String hostPort() {
            return Config.hostPort(address);
        }
    }

    // Limits that are not settings. Each is a bound no honest peer comes near.
    /** Header fields in one request head (Apache's LimitRequestFields); more is 431. */
    static final int MAX_HEADER_FIELDS = 100;
    /** An upstream response head (status line and fields); more is 502. */
    static final int MAX_RESPONSE_HEAD = 64 * 1024;
    /** A chunk-size line with its extensions (RFC 9112 7.1.1); longer is 400. */
    static final int MAX_CHUNK_LINE = 4 * 1024;
    /** Interim (1xx) responses before the final one; more is 502. */
    static final int MAX_INTERIM_RESPONSES = 10;
    /** The trailer fields after a chunked body, which are checked and dropped; more is 400. */
    static final int MAX_TRAILER_SECTION = 16 * 1024;
    /**
     * How long a closing connection keeps reading (and discarding) what the client still
     * sends, after our last response. Closing with unread input makes the kernel send RST,
     * which can destroy that response before the client reads it (nginx: lingering_close).
     */
    static final Duration LINGERING_TIME = Duration.ofSeconds(2);
    /** A method name longer than any registered one is 501 (RFC 9110 9.1). */
    static final int MAX_METHOD_LENGTH = 24;

    /** The defaults: the tutorial's nginx setup in front of Flask on 127.0.0.1:5000. */
    static final Map<String, String> DEFAULTS = defaults();

    private static Map<String, String> defaults() {
        Map<String, String> d = new LinkedHashMap<>();
        d.put("listen", "0.0.0.0:8080");
        d.put("upstream", "127.0.0.1:5000");
        d.put("connect_timeout", "5s");
        d.put("read_timeout", "90s");
        d.put("send_timeout", "60s");
        d.put("client_header_timeout", "60s");
        d.put("client_body_timeout", "60s");
        d.put("keepalive_timeout", "65s");
        d.put("upstream_keepalive", "32");
        d.put("upstream_keepalive_timeout", "60s");
        d.put("max_fails", "1");
        d.put("fail_timeout", "10s");
        d.put("client_max_body_size", "1m");
        d.put("max_request_line", "8k");
        d.put("max_header_size", "16k");
        d.put("max_connections", "10000");
        d.put("buffer_memory", "auto");
        d.put("access_log", "-");
        // nginx's predefined "combined" format.
        d.put("log_format", "$remote_addr - $remote_user [$time_local] \"$request\" $status $body_bytes_sent "
                + "\"$http_referer\" \"$http_user_agent\"");
        d.put("error_log", "-"); // and the level notice
        d.put("header.Host", "$http_host");
        d.put("header.X-Real-IP", "$remote_addr");
        d.put("header.X-Forwarded-For", "$proxy_add_x_forwarded_for");
        d.put("header.X-Forwarded-Proto", "$scheme");
        return d;
    }

    /** The variables a header template may use (nginx's names). */
    static final List<String> VARIABLES = List.of(
            "$remote_addr", "$remote_port", "$scheme", "$host", "$http_host", "$proxy_add_x_forwarded_for",
            "$request_id");

    /** The variables log_format may use (nginx's names). */
    static final List<String> LOG_VARIABLES = List.of(
            "$remote_addr", "$remote_user", "$time_local", "$time_iso8601", "$request", "$status",
            "$body_bytes_sent", "$http_referer", "$http_user_agent", "$request_time", "$upstream_addr",
            "$upstream_status", "$upstream_response_time", "$request_id", "$host");

    /** A configuration that can't be used; the message names the file, key and problem. */
    static final class Invalid extends Exception {
        Invalid(String message) {
            super(message);
        }
    }

    static Config load(Path file) throws Invalid {
        Properties p = new Properties();
        try (Reader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            p.load(r);
        } catch (IOException | IllegalArgumentException e) {
            throw new Invalid(file + ": cannot read: " + e.getMessage());
        }
        Map<String, String> values = new TreeMap<>();
        p.stringPropertyNames().forEach(k -> values.put(k, p.getProperty(k).strip()));
        return from(values, file.toString());
    }

    /** Builds a Config from key/value pairs over the defaults; {@code source} names them in errors. */
    static Config from(Map<String, String> given, String source) throws Invalid {
        Map<String, String> v = new LinkedHashMap<>(DEFAULTS);
        for (var e : given.entrySet()) {
            String key = e.getKey();
            if (!DEFAULTS.containsKey(key) && !key.startsWith("header.")) {
                throw new Invalid(source + ": unknown key '" + key + "'" + suggestion(key));
            }
            v.put(key, e.getValue());
        }
        Parser in = new Parser(source, v);
        return new Config(
                in.addresses("listen"),
                in.servers("upstream"),
                in.duration("connect_timeout"),
                in.duration("read_timeout"),
                in.duration("send_timeout"),
                in.duration("client_header_timeout"),
                in.duration("client_body_timeout"),
                in.duration("keepalive_timeout"),
                in.count("upstream_keepalive", 0),
                in.duration("upstream_keepalive_timeout"),
                in.count("max_fails", 0),
                in.duration("fail_timeout"),
                in.size("client_max_body_size", 0, Long.MAX_VALUE),
                (int) in.size("max_request_line", 64, 1 << 20),
                (int) in.size("max_header_size", 256, 1 << 20),
                in.count("max_connections", 1),
                in.bufferMemory("buffer_memory"),
                in.log("access_log"),
                in.logFormat("log_format"),
                in.log("error_log"),
                in.logLevel("error_log"),
                in.headers());
    }

    /** ", did you mean 'x'?" for the known key closest to a misspelt one. */
    private static String suggestion(String key) {
        String best = null;
        int bestDistance = Integer.MAX_VALUE;
        for (String known : DEFAULTS.keySet()) {
            int d = editDistance(key, known);
            if (d < bestDistance) {
                bestDistance = d;
                best = known;
            }
        }
        return bestDistance <= Math.max(2, key.length() / 3) ? " (did you mean '" + best + "'?)" : "";
    }

    private static int editDistance(String a, String b) {
        int[] prev = new int[b.length() + 1];
        int[] cur = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) prev[j] = j;
        for (int i = 1; i <= a.length(); i++) {
            cur[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitute = prev[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                cur[j] = Math.min(substitute, Math.min(prev[j] + 1, cur[j - 1] + 1));
            }
            int[] t = prev;
            prev = cur;
            cur = t;
        }
        return prev[b.length()];
    }

    static String hostPort(InetSocketAddress a) {
        String host = a.getHostString(); // the name as configured, or the address
        if (host.contains(":") && !a.isUnresolved()) host = Forwarding.ip(a); // "::", not "0:0:0:0:0:0:0:0"
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + a.getPort();
    }

    /** Reads typed values out of the merged key/value map, failing with the key's name. */
    private record Parser(String source, Map<String, String> values) {
        private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m|h)?");
        private static final Pattern SIZE = Pattern.compile("(\\d{1,15})([kmg])?", Pattern.CASE_INSENSITIVE);
        private static final Pattern ADDRESS = Pattern.compile("(?:\\[([0-9A-Fa-f:.]+)]|([^\\s:\\[\\]]+)):(\\d{1,5})");
        private static final Pattern SERVER = Pattern.compile("(\\S+)(?:\\s+weight=(\\d{1,3}))?");
        private static final Pattern HEADER_NAME = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Za-z-]+");
        private static final Pattern VARIABLE = Pattern.compile("\\$[a-z0-9_]+");
        /** error_log = PATH [LEVEL]: a last word that is one of nginx's levels. */
        private static final Pattern PATH_AND_LEVEL = Pattern.compile("(.*?)\\s+([a-z]+)");

        Invalid invalid(String key, String problem) {
            return new Invalid(source + ": key '" + key + "': " + problem + " (value: '" + values.get(key) + "')");
        }

        Duration duration(String key) throws Invalid {
            Matcher m = DURATION.matcher(values.get(key));
            if (!m.matches()) throw invalid(key, "expected a duration such as 500ms, 60s, 5m or 1h");
            long n = Long.parseLong(m.group(1));
            Duration d = switch (m.group(2) == null ? "s" : m.group(2)) {
                case "ms" -> Duration.ofMillis(n);
                case "m" -> Duration.ofMinutes(n);
                case "h" -> Duration.ofHours(n);
                default -> Duration.ofSeconds(n);
            };
            if (d.isZero()) throw invalid(key, "a timeout must be longer than zero");
            return d;
        }

        long size(String key, long min, long max) throws Invalid {
            Matcher m = SIZE.matcher(values.get(key));
            if (!m.matches()) throw invalid(key, "expected a size such as 512, 8k, 1m or 1g");
            long n = Long.parseLong(m.group(1));
            int shift = m.group(2) == null ? 0 : switch (Character.toLowerCase(m.group(2).charAt(0))) {
                case 'k' -> 10;
                case 'm' -> 20;
                default -> 30;
            };
            if (n > (max >> shift) || (n << shift) < min) {
                throw invalid(key, "must be between " + min + " and " + max + " bytes");
            }
            return n << shift;
        }

        /** "auto" (see {@link BufferPool#defaultBudget}), or a size of at least one large buffer. */
        long bufferMemory(String key) throws Invalid {
            if (values.get(key).equals("auto")) return BufferPool.defaultBudget();
            return size(key, BufferPool.LARGE, 1L << 40);
        }

        int count(String key, int min) throws Invalid {
            String s = values.get(key);
            if (!s.matches("\\d{1,9}") || Integer.parseInt(s) < min) {
                throw invalid(key, "expected a whole number of at least " + min);
            }
            return Integer.parseInt(s);
        }

        String log(String key) throws Invalid {
            String s = values.get(key);
            Matcher level = PATH_AND_LEVEL.matcher(s);
            if (key.equals("error_log") && level.matches()) s = level.group(1);
            if (s.isEmpty()) throw invalid(key, "expected a file path, '-' or 'off'");
            if (s.equals("off") && key.equals("error_log")) throw invalid(key, "error_log can't be off");
            return s;
        }

        /** The level after error_log's path, as in nginx's "error_log /var/log/proxy.log warn"; notice if none. */
        Log.Level logLevel(String key) throws Invalid {
            Matcher m = PATH_AND_LEVEL.matcher(values.get(key));
            if (!m.matches()) return Log.Level.NOTICE;
            for (Log.Level l : Log.Level.values()) {
                if (l.label.equals(m.group(2))) return l;
            }
            throw invalid(key, "unknown level '" + m.group(2) + "'; known: debug info notice warn error crit alert emerg");
        }

        String logFormat(String key) throws Invalid {
            String s = values.get(key);
            if (s.isBlank()) throw invalid(key, "expected a template of $variables, such as '$remote_addr $status'");
            if (s.chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) {
                throw invalid(key, "control characters are not allowed in log_format");
            }
            checkVariables(key, s, LOG_VARIABLES);
            return s;
        }

        /** Every $name in the template must be one of these. */
        private void checkVariables(String key, String template, List<String> known) throws Invalid {
            Matcher m = VARIABLE.matcher(template);
            while (m.find()) {
                if (!known.contains(m.group())) throw invalid(key, "unknown variable " + m.group() + "; known: " + known);
            }
        }

        InetSocketAddress address(String key, String text) throws Invalid {
            Matcher m = ADDRESS.matcher(text);
            if (!m.matches()) throw invalid(key, "expected host:port, with IPv6 in brackets: '" + text + "'");
            int port = Integer.parseInt(m.group(3));
            if (port > 65535) throw invalid(key, "port out of range: '" + text + "'");
            String host = m.group(1) != null ? m.group(1) : m.group(2);
            try {
                return new InetSocketAddress(InetAddress.getByName(host), port);
            } catch (UnknownHostException e) {
                throw invalid(key, "unknown host '" + host + "'");
            }
        }

        List<InetSocketAddress> addresses(String key) throws Invalid {
            List<InetSocketAddress> out = new ArrayList<>();
            for (String item : list(key)) out.add(address(key, item));
            return List.copyOf(out);
        }

        List<Server> servers(String key) throws Invalid {
            List<Server> out = new ArrayList<>();
            for (String item : list(key)) {
                Matcher m = SERVER.matcher(item);
                if (!m.matches()) throw invalid(key, "expected host:port [weight=N]: '" + item + "'");
                int weight = m.group(2) == null ? 1 : Integer.parseInt(m.group(2));
                if (weight < 1) throw invalid(key, "weight must be at least 1: '" + item + "'");
                out.add(new Server(address(key, m.group(1)), weight));
            }
            return List.copyOf(out);
        }

        private List<String> list(String key) throws Invalid {
            List<String> items = new ArrayList<>();
            for (String s : values.get(key).split(",")) {
                if (!s.isBlank()) items.add(s.strip());
            }
            if (items.isEmpty()) throw invalid(key, "needs at least one host:port");
            return items;
        }

        Map<String, String> headers() throws Invalid {
            Map<String, String> out = new LinkedHashMap<>();
            for (var e : values.entrySet()) {
                if (!e.getKey().startsWith("header.")) continue;
                String name = e.getKey().substring("header.".length());
                if (!HEADER_NAME.matcher(name).matches()) throw invalid(e.getKey(), "not a valid header name");
                if (e.getValue().chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) {
                    throw invalid(e.getKey(), "control characters are not allowed in a header value");
                }
                checkVariables(e.getKey(), e.getValue(), VARIABLES);
                out.put(name, e.getValue());
            }
            return Collections.unmodifiableMap(out);
        }
    }
}
