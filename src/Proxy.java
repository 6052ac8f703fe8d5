import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.URISyntaxException;
import java.net.StandardSocketOptions;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;

/**
 * A reverse proxy for HTTP/1.1, the job nginx does in front of a Flask app: the entry point.
 *
 * <pre>  java -cp out Proxy conf/proxy.properties</pre>
 *
 * Reads the command line ({@link CommandLine}) and the configuration ({@link Config}),
 * binds every listen address, and accepts connections: each client connection gets its own
 * virtual thread running {@link ClientConnection#serve}. At most max_connections are served
 * at once ({@link Connections}); a client over that limit gets a quick 503 and a close
 * ({@link Refusals}), so the ones already admitted keep working.
 *
 * <p>The files, in the order a request meets them: {@link Wire} (a socket with deadlines,
 * enforced by {@link Watchdog}), {@link HeadReader} (lines off the wire), {@link HttpParser}
 * (heads, {@link Headers}, {@link Body} framing), {@link ClientConnection} (the loop, and
 * {@link IdleConnections} between requests), {@link Forwarding} (header rewriting),
 * {@link Routes} (which upstream group), {@link Upstreams} (choice, health; each server's
 * {@link UpstreamPool}; names followed by {@link Resolver}, servers checked by
 * {@link HealthCheck}), {@link Relay} (bodies, in buffers from
 * {@link BufferPool}), {@link Tunnel} (WebSocket), {@link Log} ({@link LogFormat},
 * {@link LogFile}), {@link HttpError}.
 */
public final class Proxy implements AutoCloseable {
    /**
     * The read buffer of an idle client connection. Small, because 10,000 idle keep-alive
     * connections hold 10,000 of them; a request head larger than this grows it (Wire.fill).
     */
    private static final int CLIENT_BUFFER = 256;

    private final Config config;
    private final Log log;
    private final Upstreams upstreams;     // the default group's (no server when routes leave it out)
    private final Map<String, Upstreams> groups; // every group by name, "default" first
    private final List<Resolver> resolvers = new ArrayList<>();       // for the groups with a server given by name
    private final List<HealthCheck> healthChecks = new ArrayList<>(); // for the groups with health_check on
    private Status status; // the status listener; null: status_listen is off
    private final BufferPool buffers;
    private final IdleConnections idle;
    private final Connections connections;
    private final Certificates certificates; // null: no listener says ssl
    private int httpsPort;                   // the first TLS listener's port, for redirect_https
    private final Refusals refusals;
    private final List<ServerSocketChannel> listeners = new ArrayList<>();
    private final List<Thread> acceptors = new ArrayList<>();

    /** The proxy's version, as --version prints it; raised by hand with each release. */
    static final String VERSION = "0.9.0";

    /** The command line ({@link CommandLine}): run with a file, --check one, --version, --help. */
    public static void main(String[] args) {
        switch (CommandLine.parse(args)) {
            case CommandLine.Run(Path file) -> run(file);
            case CommandLine.Check(Path file) -> System.exit(CommandLine.check(file, System.err));
            case CommandLine.Answer answer -> System.exit(answer.print());
        }
    }

    /**
     * Runs until SIGTERM or SIGINT (Ctrl-C), then stops gracefully ({@link #stop}) and exits
     * 0; a bad file, or one that can't start, prints every problem and exits 1.
     */
    private static void run(Path file) {
        try {
            Proxy proxy = start(Config.load(file));
            // The JVM runs its shutdown hooks on SIGTERM, SIGINT and SIGHUP, and would then
            // exit with 128 + the signal; halt(0) ends it as a clean stop instead.
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                proxy.stop("signal");
                Runtime.getRuntime().halt(0);
            }, "shutdown"));
            for (Thread t : proxy.acceptors) t.join();
        } catch (Config.Invalid e) {
            for (String problem : e.problems()) System.err.println("proxy: " + problem);
            System.exit(CommandLine.INVALID);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Binds every listen address and starts accepting; throws Invalid if one can't be bound. */
    static Proxy start(Config config) throws Config.Invalid {
        return start(config, new BufferPool(config.bufferMemory()));
    }

    /** Starts with the given buffer pool (tests give one that fails on purpose). */
    static Proxy start(Config config, BufferPool buffers) throws Config.Invalid {
        return start(config, buffers, Resolver.SYSTEM);
    }

    /** Starts with the given buffer pool and way to resolve names (tests give answers that change). */
    static Proxy start(Config config, BufferPool buffers, Resolver.Lookup lookup) throws Config.Invalid {
        loadClasses();
        Proxy proxy;
        try {
            proxy = new Proxy(config, buffers, lookup);
        } catch (IOException e) {
            throw new Config.Invalid("cannot start: " + e.getMessage()); // a log file that can't be opened, most likely
        }
        // Before the listen addresses: once one is bound (with reuse_port, beside a running
        // proxy) the kernel queues connections on it, and a start that fails after that resets them.
        try {
            proxy.status = Status.start(config, proxy.connections, proxy.groups, proxy.buffers, proxy.log);
        } catch (IOException e) {
            proxy.close();
            throw new Config.Invalid("key 'status_listen': cannot listen on " + Config.hostPort(config.statusListen())
                    + ": " + e.getMessage());
        }
        for (InetSocketAddress address : config.listen()) {
            try {
                ServerSocketChannel server = ServerSocketChannel.open();
                proxy.listeners.add(server);
                server.setOption(StandardSocketOptions.SO_REUSEADDR, true);
                // reuse_port: a new process may bind the same address while this one drains
                if (config.reusePort()) server.setOption(StandardSocketOptions.SO_REUSEPORT, true);
                server.bind(address, 4096);
            } catch (IOException e) {
                proxy.close();
                String why = e instanceof BindException ? e.getMessage().toLowerCase() : e.toString();
                throw new Config.Invalid("key 'listen': cannot listen on " + Config.hostPort(address) + ": " + why);
            }
        }
        TlsConfig tls = config.tls();
        for (int i = 0; i < proxy.listeners.size(); i++) {
            ServerSocketChannel server = proxy.listeners.get(i);
            boolean ssl = tls != null && tls.listeners().contains(i);
            if (ssl && proxy.httpsPort == 0) proxy.httpsPort = server.socket().getLocalPort();
            proxy.acceptors.add(Thread.ofPlatform().name("accept " + server.socket().getLocalSocketAddress())
                    .start(() -> proxy.accept(server, ssl)));
        }
        config.warnings().forEach(proxy.log::warn);
        proxy.log.notice("started: pid " + ProcessHandle.current().pid() + ", Java " + Runtime.version());
        for (InetSocketAddress bound : proxy.boundAddresses()) {
            proxy.log.notice("listening on " + Config.hostPort(bound) + ", upstream " + config.upstream().stream()
                    .map(Config.Server::hostPort).toList());
        }
        config.groups().forEach((name, group) -> proxy.log.notice("upstream group " + name + ": "
                + group.upstream().stream().map(Config.Server::hostPort).toList()));
        if (config.routes().fallback() == null) {
            proxy.log.notice("no default group (no key 'upstream'): a request that matches no route gets 404");
        }
        return proxy;
    }

    /**
     * Loads all of the proxy's classes now, before the first connection. A class is read
     * from disk when first used, which takes a file descriptor: out of descriptors, the
     * class can't be loaded, and the JVM remembers that failure for good (JVMS 5.4.3), so a
     * proxy that ran out once would fail every request after. Classes already loaded need
     * no descriptor (the JDK's own come from its image, mapped at start).
     */
    private static void loadClasses() throws Config.Invalid {
        try {
            Path home = Path.of(Proxy.class.getProtectionDomain().getCodeSource().getLocation().toURI());
            List<String> names = new ArrayList<>();
            if (Files.isDirectory(home)) {
                try (var files = Files.list(home)) {
                    files.map(f -> f.getFileName().toString()).forEach(names::add);
                }
            } else {
                try (JarFile jar = new JarFile(home.toFile())) {
                    jar.stream().map(JarEntry::getName).forEach(names::add);
                }
            }
            for (String name : names) {
                if (name.endsWith(".class") && !name.contains("/")) {
                    Class.forName(name.substring(0, name.length() - 6), false, Proxy.class.getClassLoader());
                }
            }
        } catch (IOException | URISyntaxException | ClassNotFoundException | RuntimeException e) {
            throw new Config.Invalid("cannot load the proxy's classes: " + e);
        }
    }

    private Proxy(Config config, BufferPool buffers, Resolver.Lookup lookup) throws IOException {
        this.config = config;
        this.log = new Log(config);
        Watchdog.reportTo(log);
        Map<String, Config> settings = new LinkedHashMap<>();
        settings.put(Config.DEFAULT_GROUP, config);
        settings.putAll(config.groups());
        Map<String, Upstreams> groups = new LinkedHashMap<>();
        settings.forEach((name, group) -> {
            Upstreams u = new Upstreams(group, log);
            groups.put(name, u);
            Resolver r = Resolver.start(group, u, log, lookup);
            if (r != null) resolvers.add(r);
            HealthCheck h = HealthCheck.start(group, u, log);
            if (h != null) healthChecks.add(h);
        });
        this.groups = Collections.unmodifiableMap(groups);
        this.upstreams = groups.get(Config.DEFAULT_GROUP);
        this.buffers = buffers;
        this.idle = new IdleConnections(config.keepaliveTimeout(), log);
        this.connections = new Connections(config.maxConnections());
        this.refusals = new Refusals(config.maxConnections(), log);
        this.certificates = config.tls() == null ? null : new Certificates(config.tls(), log::error).watch();
    }

    /** Accepts connections on one listener; ssl: they speak TLS. */
    private void accept(ServerSocketChannel server, boolean ssl) {
        long backoff = 0; // ms; after a failed accept, as Go's net/http server: 5 ms doubling to 1 s
        while (server.isOpen()) {
            SocketChannel channel;
            try {
                channel = server.accept();
                backoff = 0;
            } catch (ClosedChannelException e) {
                return;
            } catch (IOException | OutOfMemoryError e) {
                // Out of file descriptors (or of memory), most likely: retrying at once would
                // spin a core and flood the log. Wait for connections to close, and say so.
                // Never end: without this thread the listener would be dead for good.
                backoff = Math.min(backoff == 0 ? 5 : backoff * 2, 1000);
                log.error("accept: " + e.getMessage() + "; retrying in " + backoff + " ms");
                try {
                    Thread.sleep(backoff);
                } catch (InterruptedException stop) {
                    return;
                }
                continue;
            }
            if (!connections.tryAdmit() && !makeRoom()) {
                refusals.refuse(channel, ssl);
                continue;
            }
            try {
                Thread.ofVirtual().start(() -> serve(channel, ssl));
            } catch (RuntimeException | Error e) {
                // No thread for it (out of memory, most likely): this connection ends, and the
                // acceptor goes on. Without this thread the listener would be dead for good.
                log.unexpected("starting a connection's thread", e);
                closeQuietly(channel);
                connections.notStarted();
            }
        }
    }

    /**
     * max_connections are all taken: the connections idle longest make room, as in nginx when
     * worker_connections run out, so idle keep-alive connections can't lock new clients out;
     * only busy ones can. Waits a moment for the room (the selector's thread closes them).
     */
    private boolean makeRoom() {
        try {
            return idle.reclaim(RECLAIMED_AT_ONCE) && connections.awaitAdmit(Duration.ofMillis(100));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        } catch (RuntimeException e) { // whatever it was, the acceptor goes on: this one is refused
            log.unexpected("making room under max_connections", e);
            return false;
        }
    }

    /** How many idle connections one reclaim closes: room for the next ones too (nginx: 32). */
    private static final int RECLAIMED_AT_ONCE = 32;

    /** A new client connection, on its own virtual thread: holds its slot until it closes. */
    private void serve(SocketChannel channel, boolean ssl) {
        ClientConnection connection;
        Wire client = null;
        try {
            channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
            TlsChannel tls = ssl ? new TlsChannel(certificates.newEngine(), channel, buffers) : null;
            client = new Wire(channel, tls, CLIENT_BUFFER, config.clientBodyTimeout(), config.sendTimeout());
            HttpsRedirect redirect = !ssl && config.tls() != null && config.tls().redirectHttps()
                    ? new HttpsRedirect(httpsPort) : null;
            connection = new ClientConnection(config, groups, buffers, idle, log, client, connections, redirect);
        } catch (IOException | RuntimeException | Error e) {
            // The client left before we could start, or something unexpected failed (out
            // of file descriptors, a class can't be loaded): this connection ends, cleanly.
            if (!(e instanceof IOException)) log.unexpected("setting up a connection, " + channel, e);
            if (client != null) client.close(); // no longer watched
            closeQuietly(channel);
            connections.notStarted();
            return;
        }
        connections.started(connection);
        connection.serve();
    }

    static void closeQuietly(SocketChannel channel) {
        try {
            channel.close();
        } catch (IOException ignored) {
            // nothing left to do
        }
    }

    BufferPool buffers() {
        return buffers;
    }

    Upstreams upstreams() {
        return upstreams;
    }

    /** The status listener's address, or null when status_listen is off. */
    InetSocketAddress statusAddress() {
        return status == null ? null : status.address();
    }

    /** Every upstream group by name, the default ("default") first. */
    Map<String, Upstreams> groups() {
        return groups;
    }

    IdleConnections idle() {
        return idle;
    }

    Connections connections() { // for tests
        return connections;
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

    /**
     * The graceful stop: stops accepting at once; the requests in flight finish, each
     * answered with {@code Connection: close}; idle keep-alive and pooled upstream
     * connections are closed. What is still open after shutdown_timeout (a slow download,
     * a WebSocket) is closed then. Flushes and closes the logs; returns when all is done.
     */
    void stop(String why) {
        long started = System.nanoTime();
        int inFlight = connections.count();
        log.notice("stopping (" + why + "): " + inFlight + " connection(s) open, waiting up to "
                + config.shutdownTimeout().toMillis() + " ms for the requests in flight");
        beginStop();
        try {
            if (!connections.awaitAll(config.shutdownTimeout())) {
                int closed = connections.closeAll();
                log.warn("shutdown_timeout: closed " + closed + " connection(s) still open");
                connections.awaitAll(Config.LINGERING_TIME.plusSeconds(1)); // each ends as on any failure
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        log.notice("stopped after " + (System.nanoTime() - started) / 1_000_000 + " ms");
        Watchdog.stopReportingTo(log);
        log.close();
    }

    /**
     * Stops accepting, closes idle client and upstream connections and the log files,
     * without waiting: the connections in flight finish by themselves (what they still log
     * after this is dropped). Tests use it; a running proxy stops with {@link #stop}.
     */
    @Override
    public void close() {
        beginStop();
        Watchdog.stopReportingTo(log);
        log.close();
    }

    private void beginStop() {
        for (ServerSocketChannel s : listeners) {
            try {
                s.close();
            } catch (IOException ignored) {
                // closing
            }
        }
        connections.drain();
        if (status != null) status.close();
        if (certificates != null) certificates.close();
        healthChecks.forEach(HealthCheck::close);
        resolvers.forEach(Resolver::close);
        groups.values().forEach(Upstreams::close);
        idle.close();
        buffers.deflaters.close(); // gzip's: the idle ones ended now, the ones in use as they come back
    }
}
