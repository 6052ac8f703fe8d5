import java.io.IOException;
import java.io.Reader;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads typed values out of the merged key/value map. A bad value doesn't stop the
 * reading: its problem is noted, naming the key, and the key's default stands in for it,
 * so that the keys after it are checked too (from never returns a Config with a stand-in:
 * it throws). Each reader below applies one rule to the text of its key.
 */
record ConfigParser(String source, Map<String, String> values, List<String> problems,
                    Function<String, String> keyName) {
    private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m|h)?");
    private static final Pattern SIZE = Pattern.compile("(\\d{1,15})([kmg])?", Pattern.CASE_INSENSITIVE);
    private static final Pattern ADDRESS = Pattern.compile("(?:\\[([0-9A-Fa-f:.]+)]|([^\\s:\\[\\]]+)):(\\d{1,5})");
    private static final Pattern SERVER = Pattern.compile("(\\S+)(?:\\s+weight=(\\d{1,3}))?");
    /** An absolute path and optional query of URI characters (RFC 3986 3.3, 3.4), as a request line carries it. */
    private static final Pattern PATH = Pattern.compile("/[A-Za-z0-9._~!$&'()*+,;=:@/?%-]*");
    private static final Pattern HEADER_NAME = Pattern.compile("[!#$%&'*+.^_`|~0-9A-Za-z-]+");
    private static final Pattern VARIABLE = Pattern.compile("\\$[a-z0-9_]+");
    /** A gzip_types entry: type/subtype, type/* or * (RFC 9110 8.3.1 tokens). */
    private static final Pattern MEDIA_RANGE = Pattern.compile("\\*|[!#$%&'*+.^_`|~0-9a-z-]+/(\\*|[!#$%&'*+.^_`|~0-9a-z-]+)");
    /** error_log = PATH [LEVEL]: a last word that is one of nginx's levels. */
    private static final Pattern PATH_AND_LEVEL = Pattern.compile("(.*?)\\s+([a-z]+)");

    /** What is wrong with a value: thrown by a rule, caught by {@link #read} (and headers). */
    private static final class Bad extends RuntimeException {
        Bad(String problem) {
            super(problem, null, false, false);
        }
    }

    /** The value of the key by the rule; a bad one is noted, and the default read instead. */
    <T> T read(String key, Function<String, T> rule) {
        try {
            return rule.apply(values.get(key));
        } catch (Bad e) {
            note(key, e);
            if (key.equals("strip_prefix")) return rule.apply("off"); // a route's key: not in Config.DEFAULTS
            return Config.DEFAULTS.containsKey(key) ? rule.apply(Config.DEFAULTS.get(key)) : null;
        }
    }

    /** route.NAME.return = CODE [URL or text]: nginx's return; a 3xx needs its URL. */
    static Routes.Return returnOf(String text) {
        Matcher m = Config.RETURN.matcher(text);
        if (!m.matches()) throw new Bad("expected a status and a URL or text, such as '301 https://example.com$request_uri'");
        int status = Integer.parseInt(m.group(1));
        String rest = m.group(2) == null ? "" : m.group(2).strip();
        boolean redirect = status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
        if (redirect && rest.isEmpty()) throw new Bad("a redirect needs the URL to redirect to");
        if (status < 200) throw new Bad("a status of 200 or more");
        if (rest.chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) throw new Bad("control characters are not allowed");
        checkVariables(rest, Config.RETURN_VARIABLES);
        return new Routes.Return(status, rest);
    }

    private void note(String key, Bad e) {
        problems.add(source + ": key '" + keyName.apply(key) + "': " + e.getMessage() + " (value: '" + values.get(key) + "')");
    }

    Duration duration(String key) {
        return read(key, text -> durationOf(text, false));
    }

    /** A duration, where 0 means none. */
    Duration durationOrZero(String key) {
        return read(key, text -> durationOf(text, true));
    }

    /** The longest duration a key may take: every timeout must fit in an int of milliseconds. */
    private static final Duration MAX_DURATION = Duration.ofHours(24);

    private static Duration durationOf(String text, boolean zeroMeansNone) {
        Matcher m = DURATION.matcher(text);
        if (!m.matches()) throw new Bad("expected a duration such as 500ms, 60s, 5m or 1h");
        long n = Long.parseLong(m.group(1));
        Duration d = switch (m.group(2) == null ? "s" : m.group(2)) {
            case "ms" -> Duration.ofMillis(n);
            case "m" -> Duration.ofMinutes(n);
            case "h" -> Duration.ofHours(n);
            default -> Duration.ofSeconds(n);
        };
        if (d.isZero() && !zeroMeansNone) throw new Bad("a timeout must be longer than zero");
        if (d.compareTo(MAX_DURATION) > 0) throw new Bad("at most " + MAX_DURATION.toHours() + "h");
        return d;
    }

    long size(String key, long min, long max) {
        return read(key, text -> sizeOf(text, min, max));
    }

    /** "auto" (see {@link BufferPool#defaultBudget}), or a size of at least one large buffer. */
    long bufferMemory(String key) {
        return read(key, text -> text.equals("auto") ? BufferPool.defaultBudget() : sizeOf(text, BufferPool.LARGE, 1L << 40));
    }

    boolean flag(String key) {
        return read(key, text -> switch (text) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new Bad("expected on or off");
        });
    }

    /** "auto" (then {@code auto}), or a whole number of at least {@code min}. */
    int countOrAuto(String key, int min, int auto) {
        return read(key, text -> text.equals("auto") ? auto : countOf(text, min));
    }

    int count(String key, int min) {
        return read(key, text -> countOf(text, min));
    }

    private static int countOf(String text, int min) {
        if (!text.matches("\\d{1,9}") || Integer.parseInt(text) < min) {
            throw new Bad("expected a whole number of at least " + min);
        }
        return Integer.parseInt(text);
    }

    /** A path to check (origin-form, RFC 9112 3.2.1), or empty for none. */
    String healthCheck(String key) {
        return read(key, text -> {
            if (!text.isEmpty() && !PATH.matcher(text).matches()) {
                throw new Bad("expected a path such as /healthz, or nothing for no health checks");
            }
            return text;
        });
    }

    String log(String key) {
        return read(key, text -> {
            Matcher level = PATH_AND_LEVEL.matcher(text);
            if (key.equals("error_log") && level.matches()) text = level.group(1);
            if (text.isEmpty()) throw new Bad("expected a file path, '-' or 'off'");
            if (text.equals("off") && key.equals("error_log")) throw new Bad("error_log can't be off");
            return text;
        });
    }

    /** The level after error_log's path, as in nginx's "error_log /var/log/proxy.log warn"; notice if none. */
    Log.Level logLevel(String key) {
        return read(key, text -> {
            Matcher m = PATH_AND_LEVEL.matcher(text);
            if (!m.matches()) return Log.Level.NOTICE;
            for (Log.Level l : Log.Level.values()) {
                if (l.label.equals(m.group(2))) return l;
            }
            throw new Bad("unknown level '" + m.group(2) + "'; known: debug info notice warn error crit alert emerg");
        });
    }

    String logFormat(String key) {
        return read(key, text -> {
            if (text.isBlank()) throw new Bad("expected a template of $variables, such as '$remote_addr $status'");
            if (text.chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) {
                throw new Bad("control characters are not allowed in log_format");
            }
            checkVariables(text, Config.LOG_VARIABLES);
            return text;
        });
    }

    /** Every $name in the template must be one of these. */
    private static void checkVariables(String template, List<String> known) {
        Matcher m = VARIABLE.matcher(template);
        while (m.find()) {
            if (!known.contains(m.group())) throw new Bad("unknown variable " + m.group() + "; known: " + known);
        }
    }

    /** The gzip keys, each checked whether gzip is on or not; null when it is off. */
    Gzip.Settings gzip() {
        boolean on = flag("gzip");
        List<String> types = read("gzip_types", text -> {
            List<String> out = List.of(text.toLowerCase(java.util.Locale.ROOT).split("\\s+"));
            for (String t : out) {
                if (!MEDIA_RANGE.matcher(t).matches()) {
                    throw new Bad("expected media types separated by spaces, such as text/html application/json, "
                            + "type/* or *: '" + t + "'");
                }
            }
            return out;
        });
        long minLength = size("gzip_min_length", 0, Long.MAX_VALUE);
        int level = read("gzip_comp_level", text -> {
            if (!text.matches("[1-9]")) throw new Bad("expected a level from 1 (fastest) to 9 (smallest)");
            return Integer.parseInt(text);
        });
        boolean vary = flag("gzip_vary");
        return on ? new Gzip.Settings(types, minLength, level, vary) : null;
    }

    RealIp realIp(String key) {
        return read(key, text -> {
            try {
                return RealIp.parse(text);
            } catch (IllegalArgumentException e) {
                throw new Bad(e.getMessage() + "; expected addresses and CIDR ranges, such as 127.0.0.1, 10.0.0.0/8, fd00::/8");
            }
        });
    }

    String headerName(String key) {
        return read(key, text -> {
            if (!HEADER_NAME.matcher(text).matches()) throw new Bad("not a valid header name");
            return text;
        });
    }

    List<InetSocketAddress> addresses(String key) {
        // "0.0.0.0:443 ssl": the flag is TlsConfig's
        return read(key, text -> listOf(text).stream().map(t -> addressOf(TlsConfig.address(t))).toList());
    }

    /** One host:port, or empty for none (null). */
    InetSocketAddress optionalAddress(String key) {
        return read(key, text -> text.isEmpty() ? null : addressOf(text));
    }

    List<Config.Server> servers(String key) {
        return read(key, text -> listOf(text).stream().map(ConfigParser::serverOf).toList());
    }

    /** Every header.NAME key; a bad one is noted and left out. */
    Map<String, String> headers() {
        Map<String, String> out = new LinkedHashMap<>();
        for (var e : values.entrySet()) {
            if (!e.getKey().startsWith("header.")) continue;
            String name = e.getKey().substring("header.".length());
            try {
                if (!HEADER_NAME.matcher(name).matches()) throw new Bad("not a valid header name");
                if (e.getValue().chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) {
                    throw new Bad("control characters are not allowed in a header value");
                }
                checkVariables(e.getValue(), Config.VARIABLES);
                out.put(name, e.getValue());
            } catch (Bad bad) {
                note(e.getKey(), bad);
            }
        }
        return Collections.unmodifiableMap(out);
    }

    /** Every add_header.NAME key: a header added to every response, as nginx's add_header. */
    Map<String, String> addHeaders() {
        Map<String, String> out = new LinkedHashMap<>();
        for (var e : values.entrySet()) {
            if (!e.getKey().startsWith("add_header.")) continue;
            String name = e.getKey().substring("add_header.".length());
            if (!HEADER_NAME.matcher(name).matches()) {
                note(e.getKey(), new Bad("not a valid header name"));
            } else if (e.getValue().chars().anyMatch(c -> c < 0x20 && c != '\t' || c == 0x7f)) {
                note(e.getKey(), new Bad("control characters are not allowed in a header value"));
            } else {
                out.put(name, e.getValue());
            }
        }
        return Collections.unmodifiableMap(out);
    }

    // The rules the readers share: each turns a text into its type, or throws Bad saying why not.

    private static long sizeOf(String text, long min, long max) {
        Matcher m = SIZE.matcher(text);
        if (!m.matches()) throw new Bad("expected a size such as 512, 8k, 1m or 1g");
        long n = Long.parseLong(m.group(1));
        int shift = m.group(2) == null ? 0 : switch (Character.toLowerCase(m.group(2).charAt(0))) {
            case 'k' -> 10;
            case 'm' -> 20;
            default -> 30;
        };
        if (n > (max >> shift) || (n << shift) < min) {
            throw new Bad("must be between " + min + " and " + max + " bytes");
        }
        return n << shift;
    }

    private static InetSocketAddress addressOf(String text) {
        Matcher m = ADDRESS.matcher(text);
        if (!m.matches()) throw new Bad("expected host:port, with IPv6 in brackets: '" + text + "'");
        int port = Integer.parseInt(m.group(3));
        if (port > 65535) throw new Bad("port out of range: '" + text + "'");
        String host = m.group(1) != null ? m.group(1) : m.group(2);
        try {
            return new InetSocketAddress(InetAddress.getByName(host), port);
        } catch (UnknownHostException e) {
            throw new Bad("unknown host '" + host + "'");
        }
    }

    private static Config.Server serverOf(String text) {
        Matcher m = SERVER.matcher(text);
        if (!m.matches()) throw new Bad("expected host:port [weight=N]: '" + text + "'");
        int weight = m.group(2) == null ? 1 : Integer.parseInt(m.group(2));
        if (weight < 1) throw new Bad("weight must be at least 1: '" + text + "'");
        InetSocketAddress address = addressOf(m.group(1));
        return new Config.Server(address, weight, nameOf(address));
    }

    /**
     * The host name an address was given by, or null for an IP address: digits and dots
     * (IPv4) or with colons (IPv6). InetAddress keeps the name it was looked up by.
     */
    private static String nameOf(InetSocketAddress a) {
        String host = a.getHostString();
        return host.contains(":") || host.matches("[0-9.]+") ? null : host;
    }

    private static List<String> listOf(String text) {
        List<String> items = new ArrayList<>();
        for (String s : text.split(",")) {
            if (!s.isBlank()) items.add(s.strip());
        }
        if (items.isEmpty()) throw new Bad("needs at least one host:port");
        return items;
    }
}
