import java.io.IOException;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;

/**
 * The tutorial's Flask app, as a few lines of java.base, for `make demo` on a machine with
 * nothing else installed:
 *
 * <pre>
 *   &#64;app.route("/")
 *   def hello(): return "Hello"
 * </pre>
 *
 * It answers every request with "Hello" and keeps the connection alive. It is not a web
 * server: it trusts its client (the proxy) to send well-formed requests without bodies.
 */
public final class Hello {
    private static final byte[] RESPONSE = ("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + "Content-Length: 5\r\n\r\nHello").getBytes(StandardCharsets.ISO_8859_1);

    public static void main(String[] args) throws IOException {
        String[] hostPort = (args.length > 0 ? args[0] : "127.0.0.1:5000").split(":");
        ServerSocketChannel server = ServerSocketChannel.open();
        server.bind(new InetSocketAddress(hostPort[0], Integer.parseInt(hostPort[1])));
        System.err.println("hello backend on " + server.getLocalAddress());
        while (true) {
            SocketChannel client = server.accept();
            Thread.ofVirtual().start(() -> serve(client));
        }
    }

    private static void serve(SocketChannel client) {
        ByteBuffer in = ByteBuffer.allocate(16 * 1024);
        try (client) {
            int matched = 0; // how much of "\r\n\r\n" we have seen
            while (client.read(in.clear()) > 0) {
                for (int i = 0; i < in.position(); i++) {
                    byte b = in.get(i);
                    matched = b == "\r\n\r\n".charAt(matched) ? matched + 1 : (b == '\r' ? 1 : 0);
                    if (matched == 4) {
                        client.write(ByteBuffer.wrap(RESPONSE));
                        matched = 0;
                    }
                }
            }
        } catch (IOException ignored) {
            // client gone
        }
    }
}
