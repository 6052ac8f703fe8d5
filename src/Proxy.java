import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Semaphore;

/**
 * A reverse proxy for HTTP/1.1, the job nginx does in front of a Flask app: the entry point.
 *
 * <pre>  java -cp out Proxy conf/proxy.properties</pre>
 *
 * Reads the configuration ({@link Config}), binds every listen address, and accepts
 * connections: each client connection gets its own virtual thread running
 * {@link ClientConnection#serve}. At most max_connections are served at once; a client over
 * that limit gets a quick 503 and a close, so the ones already admitted keep working.
 *
 * <p>The files, in the order a request meets them: {@link Wire} (a socket with deadlines,
 * enforced by {@link Watchdog}), {@link HttpParser} (heads, {@link Headers}, {@link Body}
 * framing), {@link ClientConnection} (the loop), {@link Forwarding} (header rewriting),
 * {@link Upstreams} (choice, health, pool), {@link Relay} (bodies), {@link Tunnel}
 * (WebSocket), {@link Log}, {@link HttpError}.
 */
public final class Proxy implements AutoCloseable {
    private static final byte[] BUSY = ("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
            + "Connection: close\r\n\r\n").getBytes(StandardCharsets.ISO_8859_1);

    /**
     * The read buffer of an idle client connection. Small, because 10,000 idle keep-alive
     * connections hold 10,000 of them; a request head larger than this grows it (Wire.fill).
     */
    private static final int CLIENT_BUFFER = 256;

    /** Refused connections that may linger at once, and for how long each (see refuse). */
    private static final int MAX_LINGERING_REFUSALS = 64;
    private static final Duration REFUSAL_LINGER = Duration.ofSeconds(1);

    private final Config config;
    private final Log log;
    private final Upstreams upstreams;
    private final Semaphore slots;
    private final Semaphore lingeringRefusals = new Semaphore(MAX_LINGERING_REFUSALS);
    private final List<ServerSocketChannel> listeners = new ArrayList<>();
    private final List<Thread> acceptors = new ArrayList<>();

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: java -cp out Proxy conf/proxy.properties");
            System.exit(2);
        }
        try {
            Proxy proxy = start(Config.load(Path.of(args[0])));
            for (Thread t : proxy.acceptors) t.join();
        } catch (Config.Invalid e) {
            System.err.println("proxy: " + e.getMessage());
            System.exit(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Binds every listen address and starts accepting; throws Invalid if one can't be bound. */
    static Proxy start(Config config) throws Config.Invalid {
        Proxy proxy;
        try {
            proxy = new Proxy(config);
        } catch (IOException e) {
            throw new Config.Invalid("cannot open log: " + e.getMessage());
        }
        for (InetSocketAddress address : config.listen()) {
            try {
                ServerSocketChannel server = ServerSocketChannel.open();
                proxy.listeners.add(server);
                server.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                server.bind(address, 4096);
            } catch (IOException e) {
                proxy.close();
                String why = e instanceof BindException ? e.getMessage().toLowerCase() : e.toString();
                throw new Config.Invalid("key 'listen': cannot listen on " + Config.hostPort(address) + ": " + why);
            }
        }
        for (ServerSocketChannel server : proxy.listeners) {
            proxy.acceptors.add(Thread.ofPlatform().name("accept " + server.socket().getLocalSocketAddress())
                    .start(() -> proxy.accept(server)));
        }
        for (InetSocketAddress bound : proxy.boundAddresses()) {
            proxy.log.error("listening on " + Config.hostPort(bound) + ", upstream " + config.upstream().stream()
                    .map(Config.Server::hostPort).toList());
        }
        return proxy;
    }

    private Proxy(Config config) throws IOException {
        this.config = config;
        this.log = new Log(config);
        this.upstreams = new Upstreams(config);
        this.slots = new Semaphore(config.maxConnections());
    }

    private void accept(ServerSocketChannel server) {
        while (server.isOpen()) {
            SocketChannel channel;
            try {
                channel = server.accept();
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException e) {
                log.error("accept: " + e.getMessage()); // e.g. out of file descriptors: go on
                continue;
            }
            if (!slots.tryAcquire()) {
                refuse(channel);
                continue;
            }
            Thread.ofVirtual().start(() -> {
                try {
                    channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                    Wire client = new Wire(channel, CLIENT_BUFFER, config.clientBodyTimeout(), config.sendTimeout());
                    new ClientConnection(config, upstreams, log, client).serve();
                } catch (IOException e) {
                    closeQuietly(channel); // the client left before we could start
                } finally {
                    slots.release();
                }
            });
        }
    }

    /**
     * Over max_connections: answer 503, then close gracefully. Closing at once, with the
     * client's request still unread, makes the kernel send RST instead of FIN, and a reset
     * can erase the 503 before the client reads it (RFC 9112 9.6). So, like every other
     * error answer, the refusal sends FIN and then reads and drops what the client still
     * sends, briefly, on a virtual thread of its own. These connections are over the limit
     * by definition, so they must stay cheap: at most {@link #MAX_LINGERING_REFUSALS} linger
     * at once, each for at most {@link #REFUSAL_LINGER} and 64 KiB (Wire.lingeringClose);
     * beyond that, a flood gets one non-blocking write and an immediate close.
     */
    private void refuse(SocketChannel channel) {
        if (!lingeringRefusals.tryAcquire()) {
            try {
                channel.configureBlocking(false); // the accept thread never waits for a client
                channel.write(ByteBuffer.wrap(BUSY));
            } catch (IOException ignored) {
                // the client is gone already
            }
            closeQuietly(channel);
            return;
        }
        Thread.ofVirtual().start(() -> {
            try {
                Wire wire = new Wire(channel, 64, REFUSAL_LINGER, REFUSAL_LINGER);
                try {
                    wire.write(BUSY);
                } catch (IOException ignored) {
                    // the client is gone, or took no byte within the time: lingeringClose just closes
                }
                wire.lingeringClose(REFUSAL_LINGER);
            } catch (IOException e) {
                closeQuietly(channel); // the client was gone before we started
            } finally {
                lingeringRefusals.release();
            }
        });
    }

    private static void closeQuietly(SocketChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing left to do
        }
    }

    /** The addresses actually bound (with the real port when the configuration said 0). */
    List<InetSocketAddress> boundAddresses() {
        List<InetSocketAddress> out = new ArrayList<>();
        for (ServerSocketChannel s : listeners) {
            try {
                out.add((InetSocketAddress) s.getLocalAddress());
            } catch (IOException ignored) {
                // closed
            }
        }
        return out;
    }

    /** Stops accepting and closes idle upstream connections; connections in flight finish. */
    @Override
    public void close() {
        for (ServerSocketChannel s : listeners) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        }
        upstreams.closeIdle();
    }
}
