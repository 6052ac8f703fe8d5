import java.io.FileOutputStream;
import java.io.FileDescriptor;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The two logs, as nginx keeps them. The access log has a line per request, in the
 * {@code log_format} ({@link LogFormat}; nginx's "combined" by default, which goaccess and
 * friends read). The error log has a line per event that matters, with its level:
 *
 * <pre>  2026/12/01 19:00:00 [notice] listening on 127.0.0.1:8080, upstream [127.0.0.1:5000]</pre>
 *
 * <p>No request waits for a disk or a pipe. Each log has a writer, a thread of its own,
 * and a line is only handed to it: the writer writes whatever has queued up meanwhile in
 * one go. At most {@link #MAX_QUEUED} characters wait per log; when a log falls that far
 * behind (a stalled disk, a pipe nobody reads), further lines are dropped and counted, and
 * the count goes to the error log once a second. Dropped, then, but never silently, and
 * never a request slowed down or stopped.
 *
 * <p>Rotation needs no signal. Once a second the writer looks at its file's path: if the
 * file there is not the one it has open (logrotate's default, {@code create}, moved it
 * away) or there is none, it opens the path again, creating the file if need be. A file
 * truncated in place ({@code copytruncate}) needs nothing: it is open for appending, so the
 * next line goes to its new end.
 */
final class Log implements AutoCloseable {
    /** nginx's levels, least severe first; error_log's level is the least severe one written. */
    enum Level {
        DEBUG, INFO, NOTICE, WARN, ERROR, CRIT, ALERT, EMERG;

        final String label = name().toLowerCase(Locale.ROOT);
    }

    /** The characters that may wait for one log's writer; more are dropped (and counted). */
    static final int MAX_QUEUED = 4 << 20;
    /** How often a writer looks whether its file was moved (and the error log's reports dropped lines). */
    private static final long LOOK_NANOS = TimeUnit.SECONDS.toNanos(1);
    /** How long {@link #close} waits for a writer to write what is queued (a pipe may be stuck). */
    private static final long CLOSE_WAIT_MILLIS = 5000;

    private static final DateTimeFormatter ERROR_TIME = DateTimeFormatter.ofPattern("yyyy/MM/dd HH:mm:ss", Locale.US);

    private final Writer access; // null when access_log is off
    private final Writer errors;
    private final LogFormat format;
    private final Level level;

    Log(Config config) throws IOException {
        this.format = new LogFormat(config.logFormat());
        this.level = config.errorLogLevel();
        this.errors = new Writer(this, "error log", config.errorLog(), FileDescriptor.err);
        try {
            this.access = config.accessLog().equals("off") ? null
                    : new Writer(this, "access log", config.accessLog(), FileDescriptor.out);
        } catch (IOException e) {
            errors.closeFile(); // don't leak the one that did open
            throw e;
        }
        // Started only now, when both are in place: the error log's writer reports for both.
        errors.thread.start();
        if (access != null) access.thread.start();
    }

    /** Hands the exchange's line to the access log's writer. */
    void access(LogFormat.Entry entry) {
        if (access != null) access.offer(format.line(entry));
    }

    /** Whether lines of this level are written (to skip building a message nobody reads). */
    boolean enabled(Level l) {
        return l.compareTo(level) >= 0;
    }

    /** One line in the error log, if its level is written. Control characters are escaped: one event, one line. */
    void log(Level l, String message) {
        if (enabled(l)) errors.offer(errorLine(l, message));
    }

    void info(String message) {
        log(Level.INFO, message);
    }

    void notice(String message) {
        log(Level.NOTICE, message);
    }

    void warn(String message) {
        log(Level.WARN, message);
    }

    void error(String message) {
        log(Level.ERROR, message);
    }

    /**
     * Something that should not happen (a bug, the JVM out of memory) while {@code doing}:
     * crit, with its stack trace, the only entry that has one. Expected failures (a client
     * gone, an upstream refusing) are one line each, without.
     */
    void unexpected(String doing, Throwable e) {
        if (!enabled(Level.CRIT)) return;
        StringWriter trace = new StringWriter();
        e.printStackTrace(new PrintWriter(trace));
        String frames = trace.toString().substring(trace.toString().indexOf('\n') + 1); // the first line is e itself
        errors.offer(errorLine(Level.CRIT, "unexpected " + e + " while " + doing) + frames);
    }

    /**
     * Writes what is queued, reports what was dropped, and closes the files this Log
     * opened; waits at most {@link #CLOSE_WAIT_MILLIS} for each writer. Standard output and
     * error are flushed, not closed: they belong to the process. A line logged after this
     * (by a connection still finishing) is dropped.
     */
    @Override
    public void close() {
        if (access != null) access.close(); // first: the error log's writer reports its drops as it ends
        errors.close();
    }

    /**
     * On the error log's writer thread, once a second and at the end: how many lines each log
     * dropped since the last time, and why, written at once. A report that can't be written
     * keeps its count for the next one.
     */
    private void reportDropped() {
        for (Writer w : access == null ? List.of(errors) : List.of(access, errors)) {
            long n = w.dropped.getAndSet(0);
            if (n == 0) continue;
            String why = w.failure != null ? w.failure : "writing fell " + MAX_QUEUED / (1 << 20) + " MiB behind";
            w.failure = null;
            if (!enabled(Level.ERROR) || !errors.write(errorLine(Level.ERROR,
                    w.name + ": " + n + " line" + (n == 1 ? "" : "s") + " dropped: " + why))) {
                w.dropped.addAndGet(n);
            }
        }
    }

    private static String errorLine(Level l, String message) {
        return ERROR_TIME.format(LocalDateTime.now()) + " [" + l.label + "] " + oneLine(message) + "\n";
    }

    private static String oneLine(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) < 0x20 || s.charAt(i) == 0x7f) return LogFormat.escapeControls(s);
        }
        return s;
    }

    /** One log's file (or standard stream) and the thread that writes to it. */
    private static final class Writer {
        private static final String STOP = new String("stop"); // compared by identity
        private static final Object GONE = new Object();       // the key of a path with no file

        private final Log log;             // whose error log writer reports dropped lines
        private final String name;         // "access log", in those reports
        private final Path path;           // null: a standard stream
        private final OutputStream standard;
        private final LinkedBlockingQueue<String> queue = new LinkedBlockingQueue<>();
        private final AtomicLong queued = new AtomicLong();  // characters waiting
        private final AtomicLong dropped = new AtomicLong(); // lines, since the last report
        private final Thread thread;
        private volatile boolean closed;
        private volatile String failure;  // why the last write or open failed, for the report
        // The writer thread's own, once the constructor has opened the file:
        private FileChannel file;
        private Object fileKey;       // which file it is (device and inode), to see it moved

        Writer(Log log, String name, String target, FileDescriptor standard) throws IOException {
            this.log = log;
            this.name = name;
            this.path = target.equals("-") ? null : Path.of(target);
            this.standard = path == null ? new FileOutputStream(standard) : null;
            if (path != null) open(); // here, so that a file that can't be opened stops the start
            this.thread = Thread.ofPlatform().daemon().name(name).unstarted(this::run);
        }

        /** Queues a line, or counts it as dropped; never waits. False if dropped. */
        boolean offer(String line) {
            if (closed) return false;
            if (queued.addAndGet(line.length()) > MAX_QUEUED) {
                queued.addAndGet(-line.length());
                dropped.incrementAndGet();
                return false;
            }
            queue.add(line);
            return true;
        }

        void close() {
            if (closed) return;
            closed = true;
            queue.add(STOP);
            try {
                thread.join(CLOSE_WAIT_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        private void run() {
            List<String> batch = new ArrayList<>();
            long nextLook = System.nanoTime() + LOOK_NANOS;
            for (boolean stopping = false; !stopping; ) {
                try {
                    String first = queue.poll(Math.max(0, nextLook - System.nanoTime()), TimeUnit.NANOSECONDS);
                    if (first != null) {
                        batch.add(first);
                        queue.drainTo(batch, 10_000);
                    }
                } catch (InterruptedException e) {
                    stopping = true; // nobody interrupts it; if someone does, end as at close
                }
                stopping |= batch.removeIf(line -> line == STOP);
                if (stopping) queue.drainTo(batch); // lines that came just before the close
                if (!batch.isEmpty()) {
                    StringBuilder text = new StringBuilder();
                    for (String line : batch) text.append(line);
                    if (!write(text.toString())) dropped.addAndGet(batch.size());
                    queued.addAndGet(-text.length()); // only now: the bound counts what is being written too
                    batch.clear();
                }
                if (stopping || System.nanoTime() - nextLook >= 0) {
                    nextLook = System.nanoTime() + LOOK_NANOS;
                    // The error log's writer reports for both: a stuck access log can't report itself.
                    if (log.errors == this) log.reportDropped();
                    if (!stopping) reopenIfMoved();
                }
            }
            closeFile();
        }

        /** Writes the text with one system call (or a few, for a large batch); false if it failed. */
        private boolean write(String text) {
            byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
            try {
                if (path == null) {
                    standard.write(bytes);
                    standard.flush();
                } else {
                    if (file == null) open(); // the last open failed: try again
                    for (ByteBuffer b = ByteBuffer.wrap(bytes); b.hasRemaining(); ) file.write(b);
                }
                return true;
            } catch (IOException e) {
                failure = reason(e);
                return false;
            }
        }

        /** Opens the path again if the file there is not the open one (moved, deleted, replaced). */
        private void reopenIfMoved() {
            if (path == null || file != null && Objects.equals(key(path), fileKey)) return;
            try {
                open();
            } catch (IOException e) {
                failure = reason(e); // goes on writing to the old file, and tries again in a second
            }
        }

        private void open() throws IOException {
            FileChannel next;
            try {
                next = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new IOException("cannot open the " + name + " " + path + ": " + reason(e), e);
            }
            FileChannel old = file;
            file = next;
            fileKey = key(path);
            if (old != null) old.close();
        }

        /** The identity of the file at the path (device and inode), GONE if there is none. */
        private static Object key(Path path) {
            try {
                Object key = Files.readAttributes(path, BasicFileAttributes.class).fileKey();
                return key != null ? key : path; // a file system without keys: seen as moved only when gone
            } catch (IOException e) {
                return GONE;
            }
        }

        private void closeFile() {
            try {
                if (file != null) file.close();
                else if (standard != null) standard.flush();
            } catch (IOException ignored) {
                // nothing left to tell it to
            }
        }

        private static String reason(IOException e) {
            if (e instanceof NoSuchFileException) return "no such file or directory";
            if (e instanceof AccessDeniedException) return "permission denied";
            return e.getMessage() != null ? e.getMessage() : e.toString();
        }
    }
}
