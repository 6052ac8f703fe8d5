import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Which upstream group a request goes to: the {@code route.NAME = [HOST][PATH_PREFIX] -> GROUP}
 * keys, built once at start into an immutable table that a request asks one question,
 * {@link #match}. The order of the keys in the file never matters; nginx's rules do:
 *
 * <ol>
 * <li>The host (case-insensitive, without its port or a trailing dot): the routes of that
 *     exact name first; else those of the longest leading wildcard that matches it
 *     ({@code *.example.com}: its subdomains only; {@code .example.com}: the name and its
 *     subdomains, as in nginx's server_name).
 * <li>Within them the longest path prefix wins. A request for {@code /admin} where only
 *     {@code /admin/} is routed gets a 301 to {@code /admin/}, as nginx answers for a
 *     prefix location ending in "/".
 * <li>No prefix matches there: the routes without a host, by the same rule; then the default
 *     group ({@code upstream}); without one, 404.
 * </ol>
 *
 * A route may also answer by itself ({@code route.NAME.return = 301 https://...}, nginx's
 * return). Paths are compared as they came, undecoded; that is why a request whose path has a
 * dot-segment ({@code /public/../admin/}) is refused while routes are in use: its app could
 * resolve it to a path that another route guards.
 */
final class Routes {
    /** What a request gets: a route (to its group, or with a fixed answer), a redirect, or 404. */
    sealed interface Decision permits Route, Redirect, NotFound {}

    /**
     * One route. {@code host}: null for none, else lowercase, "*.x" or ".x" for wildcards.
     * {@code group}: the upstream group's name ("default" for the unnamed one), or null for a
     * route that only returns. {@code settings}: the configuration with this route's
     * overrides (header.X, read_timeout, client_max_body_size) applied.
     */
    record Route(String name, String host, String prefix, String group, boolean stripPrefix,
                 Return answer, Config settings) implements Decision {
        /** The key that defines it, for messages. */
        String key() {
            return "route." + name;
        }

        /** The request target sent upstream: with strip_prefix, less the prefix, still absolute. */
        String target(String target) {
            if (!stripPrefix || !target.startsWith(prefix)) return target;
            String rest = target.substring(prefix.length());
            return rest.startsWith("/") ? rest : "/" + rest;
        }
    }

    /** nginx's return: a status and, for a redirect, the Location (else the body), a template. */
    record Return(int status, String text) {}

    /** 301 to the path with its trailing "/" (and the query, if any). */
    record Redirect(String location) implements Decision {}

    /** No route matches and there is no default group. */
    record NotFound() implements Decision {}

    private static final NotFound NOT_FOUND = new NotFound();

    /** Routes sharing one host pattern, longest prefix first. */
    private record Table(List<Route> routes) {
        /** The longest prefix of the path; a redirect to "path/" if only that is routed; null if neither. */
        Decision match(String path, String query) {
            Route best = null;
            for (Route r : routes) {
                if (path.startsWith(r.prefix())) {
                    best = r;
                    break;
                }
            }
            if (best != null && best.prefix().length() == path.length()) return best;
            for (Route r : routes) { // "/admin" where only "/admin/" is routed: nginx's 301
                String p = r.prefix();
                if (p.length() == path.length() + 1 && p.endsWith("/") && p.startsWith(path)) {
                    return new Redirect(p + query);
                }
            }
            return best;
        }
    }

    private final Map<String, Table> exact;       // "api.example.com" -> its routes
    private final Map<String, Table> subdomains;  // ".example.com" -> routes of *.example.com and .example.com
    private final Map<String, Table> dotNames;    // "example.com" -> routes of .example.com (the name itself)
    private final Table hostless;
    private final Route fallback;                 // the default group, or null: 404
    private final boolean empty;

    /** Builds the table; the routes are checked already (see {@link #conflicts}). */
    Routes(List<Route> routes, Route fallback) {
        Map<String, List<Route>> exactLists = new HashMap<>(), subLists = new HashMap<>(), dotLists = new HashMap<>();
        List<Route> none = new ArrayList<>();
        for (Route r : routes) {
            String h = r.host();
            if (h == null) none.add(r);
            else if (h.startsWith("*.")) subLists.computeIfAbsent(h.substring(1), k -> new ArrayList<>()).add(r);
            else if (h.startsWith(".")) {
                subLists.computeIfAbsent(h, k -> new ArrayList<>()).add(r);
                dotLists.computeIfAbsent(h.substring(1), k -> new ArrayList<>()).add(r);
            } else exactLists.computeIfAbsent(h, k -> new ArrayList<>()).add(r);
        }
        this.exact = tables(exactLists);
        this.subdomains = tables(subLists);
        this.dotNames = tables(dotLists);
        this.hostless = table(none);
        this.fallback = fallback;
        this.empty = routes.isEmpty();
    }

    private static Map<String, Table> tables(Map<String, List<Route>> lists) {
        Map<String, Table> out = new HashMap<>();
        lists.forEach((k, v) -> out.put(k, table(v)));
        return Map.copyOf(out);
    }

    private static Table table(List<Route> routes) {
        List<Route> sorted = new ArrayList<>(routes);
        sorted.sort(Comparator.comparingInt((Route r) -> r.prefix().length()).reversed());
        return new Table(List.copyOf(sorted));
    }

    /** Whether no route is configured: every request goes to the default group. */
    boolean isEmpty() {
        return empty;
    }

    /** The default group's route, or null when there is none. */
    Route fallback() {
        return fallback;
    }

    /**
     * The decision for a request: its Host value (null if it had none; a port and a trailing
     * dot are ignored) and its origin-form target (the query is not part of the path).
     */
    Decision match(String hostHeader, String target) {
        if (empty) return fallback != null ? fallback : NOT_FOUND;
        int q = target.indexOf('?');
        String path = q < 0 ? target : target.substring(0, q);
        Table byHost = hostTable(hostHeader == null ? "" : host(hostHeader));
        String query = q < 0 ? "" : target.substring(q);
        Decision d = byHost == null ? null : byHost.match(path, query);
        if (d == null) d = hostless.match(path, query);
        if (d == null) d = fallback != null ? fallback : NOT_FOUND;
        return d;
    }

    /** The routes for this host name: exact, else the longest wildcard that matches; null if none. */
    private Table hostTable(String host) {
        if (host.isEmpty()) return null;
        Table t = exact.get(host);
        if (t != null) return t;
        t = dotNames.get(host); // ".example.com" for example.com itself
        if (t != null) return t;
        for (int dot = host.indexOf('.'); dot >= 0; dot = host.indexOf('.', dot + 1)) {
            t = subdomains.get(host.substring(dot)); // the longest suffix first
            if (t != null) return t;
        }
        return null;
    }

    /** A Host value as routes compare it: lowercase, without the port or a trailing dot. */
    static String host(String hostHeader) {
        String h = HttpParser.hostName(hostHeader);
        return h.endsWith(".") ? h.substring(0, h.length() - 1) : h;
    }

    /**
     * The target as an app reads it, to check that it chooses the route the target as it
     * came does (ClientConnection.route): in its path, every escape of an ASCII character
     * decoded (WSGI's PATH_INFO is decoded, "%2F" and "%69" alike) and runs of "/" made one
     * (as nginx's merge_slashes); escapes of other bytes, and of '?' and '#' (the path would
     * end there), kept, in capitals. A route's prefix
     * must be written in this form (ConfigFamilies). The query is left as it came.
     */
    static String asRead(String target) {
        if (target.indexOf('%') < 0 && !target.contains("//")) return target;
        int end = target.indexOf('?');
        if (end < 0) end = target.length();
        StringBuilder out = new StringBuilder(end);
        for (int i = 0; i < end; i++) {
            char c = target.charAt(i);
            if (c == '%') {
                int b = Integer.parseInt(target, i + 1, i + 3, 16); // HttpParser checked the escape
                i += 2;
                if (b >= 0x80 || b == '?' || b == '#') { // a byte of UTF-8, say, or one that would end the path: kept escaped
                    out.append('%').append(Character.toUpperCase(Character.forDigit(b >> 4, 16)))
                            .append(Character.toUpperCase(Character.forDigit(b & 15, 16)));
                    continue;
                }
                c = (char) b;
            }
            if (c == '/' && !out.isEmpty() && out.charAt(out.length() - 1) == '/') continue;
            out.append(c);
        }
        return out.append(target, end, target.length()).toString();
    }

    /** Whether a path has a "." or ".." segment, plain or percent-encoded (RFC 3986 5.2.4). */
    static boolean hasDotSegment(String target) {
        int q = target.indexOf('?');
        String path = (q < 0 ? target : target.substring(0, q)).toLowerCase(Locale.ROOT).replace("%2e", ".");
        for (String segment : path.split("/", -1)) {
            if (segment.equals(".") || segment.equals("..")) return true;
        }
        return false;
    }

    /**
     * The problems of a set of routes, each naming its keys: two with the same host and
     * prefix (case-insensitive; "*.x" and ".x" cover the same subdomains).
     */
    static List<String> conflicts(List<Route> routes) {
        List<String> problems = new ArrayList<>();
        Map<String, Route> seen = new HashMap<>();
        for (Route r : routes) {
            String host = r.host() == null ? "" : r.host().startsWith("*.") ? r.host().substring(1) : r.host();
            String key = host + " " + r.prefix().toLowerCase(Locale.ROOT);
            Route other = seen.putIfAbsent(key, r);
            if (other != null) {
                problems.add("keys '" + other.key() + "' and '" + r.key() + "' route the same host and prefix ("
                        + (r.host() == null ? "" : r.host()) + r.prefix() + ")");
            }
        }
        return problems;
    }

    /** Whether a return's text is its Location (a redirect) rather than its body. */
    static boolean redirect(int status) {
        return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
    }

    /** A route's own answer: a redirect to {@code text}, or {@code text} as the body (the status's name if empty). */
    static byte[] response(int status, String text, boolean close, boolean head) {
        String body = body(status, text);
        return Headers.bytes(new StringBuilder(160 + text.length())
                .append("HTTP/1.1 ").append(status).append(' ').append(HttpError.reasonPhrase(status)).append("\r\n")
                .append("Date: ").append(Forwarding.HttpDate.now()).append("\r\n")
                .append(redirect(status) ? "Location: " + text + "\r\n" : "")
                .append("Content-Type: text/plain\r\n")
                .append("Content-Length: ").append(body.length()).append("\r\n")
                .append(close ? "Connection: close\r\n" : "")
                .append("\r\n").append(head || status == 204 ? "" : body));
    }

    /** The length of the body {@link #response} sends ($body_bytes_sent). */
    static int bodyLength(int status, String text) {
        return status == 204 ? 0 : body(status, text).length();
    }

    private static String body(int status, String text) {
        if (status == 204) return "";
        return redirect(status) || text.isEmpty() ? Forwarding.errorBody(status) : text;
    }
}
