import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * One log's file (or standard output or error) and the thread that writes to it, so that
 * no request ever waits for a disk or a pipe. A request only queues its line; the thread
 * writes whatever has queued up in the last {@link #GATHER_MILLIS} ms in one go. At most {@link #MAX_QUEUED}
 * characters wait, those being written included; when the log falls that far behind (a
 * stalled disk, a pipe nobody reads), further lines are dropped and counted, for the error
 * log to report ({@link Log}). Dropped, then, but never silently, and never a request
 * slowed down or stopped.
 *
 * <p>Rotation needs no signal. Once a second the thread looks at the file's path: if the
 * file there is not the one it has open (logrotate's default, {@code create}, moved it
 * away) or there is none, it opens the path again, creating the file if need be. A file
 * truncated in place ({@code copytruncate}) needs nothing: it is open for appending, so the
 * next line goes to its new end.
 */
final class LogFile {
    /**
     * The characters that may wait for the writer; more are dropped (and counted). A 64th
     * of the heap, between 256 KiB and 4 MiB: in a 128 MB container (a 64 MiB heap) 1 MiB,
     * a quarter of a second of lines at 30,000 requests a second; it is a bound for a stalled
     * disk, and lines held in memory must not take the heap the connections need.
     */
    static final int MAX_QUEUED = (int) Math.max(256 << 10, Math.min(4 << 20, Runtime.getRuntime().maxMemory() / 64));
    /** How often the writer looks whether its file was moved (and runs its task). */
    private static final long LOOK_NANOS = TimeUnit.SECONDS.toNanos(1);
    /** How long the writer lets lines gather before it writes them. */
    private static final long GATHER_MILLIS = 10;
    /** How long {@link #close} waits for the writer to write what is queued (a pipe may be stuck). */
    private static final long CLOSE_WAIT_MILLIS = 5000;

    private static final String STOP = new String("stop"); // compared by identity
    private static final Object GONE = new Object();       // the key of a path with no file

    final String name;                 // "access log", in reports
    private final Path path;           // null: a standard stream
    private final OutputStream standard;
    private final LinkedBlockingQueue<String> queue = new LinkedBlockingQueue<>();
    private final AtomicLong queued = new AtomicLong();  // characters waiting
    private final AtomicLong dropped = new AtomicLong(); // lines, since the last report
    private volatile Thread thread;    // null until started
    private Runnable everySecond;      // the writer's own task, once a second and at the end
    private volatile boolean closed;
    private volatile String failure;  // why the last write or open failed, for the report
    // The writer thread's own, once the constructor has opened the file:
    private FileChannel file;
    private Object fileKey;       // which file it is (device and inode), to see it moved

    /** Opens the file ({@code target} is a path, or "-" for the standard stream), or fails: before any thread. */
    LogFile(String name, String target, FileDescriptor standard) throws IOException {
        this.name = name;
        this.path = target.equals("-") ? null : Path.of(target);
        this.standard = path == null ? new FileOutputStream(standard) : null;
        if (path != null) open(); // here, so that a file that can't be opened stops the start
    }

    /** Starts the writer; it also runs {@code everySecond}, and once more at the end. */
    void start(Runnable everySecond) {
        this.everySecond = everySecond;
        thread = Thread.ofPlatform().daemon().name(name).start(this::run);
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

    /**
     * Writes what is queued and closes the file, waiting at most {@link #CLOSE_WAIT_MILLIS}.
     * Standard output and error are not closed: they belong to the process.
     */
    void close() {
        if (closed) return;
        closed = true;
        if (thread == null) {
            closeFile();
            return;
        }
        queue.add(STOP);
        try {
            thread.join(CLOSE_WAIT_MILLIS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** The lines dropped since the last call. */
    long takeDropped() {
        return dropped.getAndSet(0);
    }

    /** Counts them again: a report that could not be made. */
    void keepDropped(long n) {
        dropped.addAndGet(n);
    }

    /** Why the last write or open failed, if one did since the last call. */
    String takeFailure() {
        String f = failure;
        failure = null;
        return f;
    }

    private void run() {
        List<String> batch = new ArrayList<>();
        long nextLook = System.nanoTime() + LOOK_NANOS;
        for (boolean stopping = false; !stopping; ) {
            try {
                String first = queue.poll(Math.max(0, nextLook - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (first != null) {
                    // Let the lines of a busy moment gather: one write for them all, and while
                    // lines keep coming, the writer never waits on the queue, so a request never
                    // has to wake it. Idle, it waits there, and the next line wakes it.
                    Thread.sleep(GATHER_MILLIS);
                    batch.add(first);
                    queue.drainTo(batch, 100_000);
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
                everySecond.run();
                if (!stopping) reopenIfMoved();
            }
        }
        closeFile();
    }

    /**
     * Writes the text with one system call (or a few, for a large batch); false if it
     * failed. Only on the writer's thread: by it, or by its task.
     */
    boolean write(String text) {
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
