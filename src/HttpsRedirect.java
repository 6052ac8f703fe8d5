import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.Map;

/**
 * redirect_https = on: a plain listener answers every request with a redirect to the same
 * host and target on the TLS listener, as nginx's {@code return 301 https://$host$request_uri;}.
 * 301 for GET and HEAD; 308 for the other methods, which must not become a GET on the way
 * (RFC 9110 15.4.2, 15.4.9; a browser turns a POST that got 301 into a GET).
 */
record HttpsRedirect(int port) {
    /** 301 or 308, by the method. */
    static int status(HttpParser.Request req) {
        return req.method().equals("GET") || req.method().equals("HEAD") ? 301 : 308;
    }

    /** Where the request is sent: https://host[:port]/target (port left out if 443). */
    String location(HttpParser.Request req, Wire client) {
        String host = req.host() != null ? HttpParser.hostName(req.host()) : localAddress(client);
        String target = req.target().startsWith("/") ? req.target() : "/"; // OPTIONS *: the root
        return "https://" + host + (port == 443 ? "" : ":" + port) + target;
    }

    /** The whole response, with the add_header fields. */
    byte[] response(HttpParser.Request req, Wire client, boolean keepAlive, Map<String, String> addHeader) {
        int status = status(req);
        String body = status + " " + HttpError.reasonPhrase(status) + "\n";
        StringBuilder sb = new StringBuilder(256).append("HTTP/1.1 ").append(status).append(' ')
                .append(HttpError.reasonPhrase(status)).append("\r\n")
                .append("Date: ").append(Forwarding.HttpDate.now()).append("\r\n")
                .append("Location: ").append(location(req, client)).append("\r\n")
                .append("Content-Type: text/plain\r\n")
                .append("Content-Length: ").append(body.length()).append("\r\n");
        addHeader.forEach((name, value) -> sb.append(name).append(": ").append(value).append("\r\n"));
        if (!keepAlive) sb.append("Connection: close\r\n");
        sb.append("\r\n");
        if (!req.method().equals("HEAD")) sb.append(body);
        return Headers.bytes(sb);
    }

    private static String localAddress(Wire client) {
        try {
            InetSocketAddress local = (InetSocketAddress) client.channel.getLocalAddress();
            String ip = Forwarding.ip(local);
            return ip.contains(":") ? "[" + ip + "]" : ip;
        } catch (IOException e) {
            return "localhost";
        }
    }
}
