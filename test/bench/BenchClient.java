import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * The two jobs of bench.sh that the shell can't do well, with nothing but java.base:
 *
 * <pre>
 *   java BenchClient free-ports N
 *       prints N free loopback ports, one a line, below the ephemeral range (see
 *       {@link #freePorts}); all are held at once while choosing, so the N ports differ.
 *
 *   java BenchClient idle HOST PORT N SECONDS PID...
 *       opens N keep-alive connections, sends one "GET /" on each and reads its
 *       response, keeps them all open, then prints "served=K rss_kib=R before_kib=B":
 *       K responses with status 200, R the summed VmRSS of the PIDs (the server's
 *       processes) while the N connections are still open, B the same before the first
 *       was opened. Then closes them. Gives up after SECONDS.
 * </pre>
 *
 * The idle client is one thread with a selector: 10,000 connections need 10,000 sockets,
 * not 10,000 threads. At most {@link #IN_FLIGHT} connections are being set up at once, so
 * the server's listen backlog (nginx: 511) never overflows; an overflow would only add
 * SYN retries of a second each, which measures the kernel, not the server.
 */
public final class BenchClient {
    private static final int IN_FLIGHT = 200;
    private static final byte[] REQUEST = "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1);

    public static void main(String[] args) throws Exception {
        switch (args.length > 0 ? args[0] : "") {
            case "free-ports" -> freePorts(Integer.parseInt(args[1]));
            case "idle" -> idle(args);
            default -> {
                System.err.println("usage: BenchClient free-ports N | idle HOST PORT N SECONDS PID...");
                System.exit(2);
            }
        }
    }

    /**
     * Why not simply bind port 0 and let the OS choose: the OS chooses from the ephemeral
     * range, the ports it also gives to outgoing connections. The benchmark makes tens of
     * thousands of those, and each leaves its port in TIME_WAIT for a minute, where it
     * blocks a later bind(): a server restarted on its port (as the fresh-start test does)
     * would fail with "address already in use". So: random ports from 10000 up to the start
     * of the ephemeral range, each tried with a bind() to know it is free now.
     */
    private static void freePorts(int n) throws IOException {
        int low = 10000, high = ephemeralStart();
        Random random = new Random();
        List<ServerSocket> held = new ArrayList<>();
        for (int tries = 0; held.size() < n; tries++) {
            ServerSocket s = new ServerSocket();
            try {
                // Past 1000 tries (or with no room below the range), let the OS choose after all.
                s.bind(new InetSocketAddress("127.0.0.1", high - low < 100 || tries > 1000 ? 0 : low + random.nextInt(high - low)));
                held.add(s);
            } catch (IOException busy) {
                s.close();
            }
        }
        for (ServerSocket s : held) {
            System.out.println(s.getLocalPort());
            s.close();
        }
    }

    /** The first port of net.ipv4.ip_local_port_range (Linux's default: 32768). */
    private static int ephemeralStart() {
        try {
            String range = Files.readAllLines(Path.of("/proc/sys/net/ipv4/ip_local_port_range")).get(0);
            return Integer.parseInt(range.trim().split("\\s+")[0]);
        } catch (IOException | RuntimeException e) {
            return 32768;
        }
    }

    /** One connection's progress: the request still to send, the response read so far. */
    private static final class Conn {
        final ByteBuffer out = ByteBuffer.wrap(REQUEST);
        final ByteBuffer in = ByteBuffer.allocate(4096);
    }

    private static void idle(String[] args) throws Exception {
        InetSocketAddress target = new InetSocketAddress(args[1], Integer.parseInt(args[2]));
        int n = Integer.parseInt(args[3]);
        long deadline = System.nanoTime() + Long.parseLong(args[4]) * 1_000_000_000L;
        long before = rssKib(args);
        List<SocketChannel> all = new ArrayList<>(n);
        int opened = 0, served = 0, failed = 0;
        try (Selector selector = Selector.open()) {
            while (served + failed < n && System.nanoTime() < deadline) {
                // Top up the connections being set up, never more than IN_FLIGHT at once.
                while (opened < n && opened - served - failed < IN_FLIGHT) {
                    opened++;
                    try {
                        SocketChannel ch = SocketChannel.open();
                        all.add(ch);
                        ch.configureBlocking(false);
                        ch.connect(target);
                        ch.register(selector, SelectionKey.OP_CONNECT, new Conn());
                    } catch (IOException e) {
                        failed++; // e.g. out of file descriptors
                    }
                }
                selector.select(100);
                for (SelectionKey key : selector.selectedKeys()) {
                    int outcome = step(key);
                    if (outcome > 0) served++;
                    if (outcome < 0) failed++;
                    if (outcome != 0) key.cancel(); // done with it: it stays open, idle
                }
                selector.selectedKeys().clear();
            }
            Thread.sleep(1000); // let the server settle before reading its memory
            System.out.println("served=" + served + " rss_kib=" + rssKib(args) + " before_kib=" + before);
        } finally {
            for (SocketChannel ch : all) {
                try {
                    ch.close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
        }
    }

    /** Advances one connection: 0 = not done yet, 1 = got a 200, -1 = failed. */
    private static int step(SelectionKey key) {
        SocketChannel ch = (SocketChannel) key.channel();
        Conn c = (Conn) key.attachment();
        try {
            if (key.isConnectable()) {
                ch.finishConnect();
                key.interestOps(SelectionKey.OP_WRITE);
            } else if (key.isWritable()) {
                ch.write(c.out);
                if (!c.out.hasRemaining()) key.interestOps(SelectionKey.OP_READ);
            } else if (key.isReadable()) {
                if (ch.read(c.in) < 0) return -1; // closed before a whole response
                return responseOutcome(c.in);
            }
            return 0;
        } catch (IOException e) {
            return -1;
        }
    }

    /** Is a whole response in the buffer yet? 0 = not yet, 1 = a complete 200, -1 = anything else. */
    private static int responseOutcome(ByteBuffer in) {
        String text = new String(in.array(), 0, in.position(), StandardCharsets.ISO_8859_1);
        int headEnd = text.indexOf("\r\n\r\n");
        if (headEnd < 0) return in.hasRemaining() ? 0 : -1;
        long length = 0;
        boolean chunked = false;
        for (String line : text.substring(0, headEnd).split("\r\n")) {
            if (line.regionMatches(true, 0, "Content-Length:", 0, 15)) length = Long.parseLong(line.substring(15).trim());
            if (line.regionMatches(true, 0, "Transfer-Encoding:", 0, 18)) chunked = true;
        }
        boolean complete = chunked ? text.endsWith("\r\n0\r\n\r\n") : in.position() >= headEnd + 4 + length;
        if (!complete) return in.hasRemaining() ? 0 : -1;
        return text.startsWith("HTTP/1.1 200 ") ? 1 : -1;
    }

    /** The summed VmRSS of the PIDs among the idle command's arguments. */
    private static long rssKib(String[] args) throws IOException {
        long sum = 0;
        for (int i = 5; i < args.length; i++) sum += vmRssKib(args[i]);
        return sum;
    }

    private static long vmRssKib(String pid) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc", pid, "status"))) {
            if (line.startsWith("VmRSS:")) return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
        return 0;
    }
}
