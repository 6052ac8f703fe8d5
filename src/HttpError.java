import java.io.IOException;

/**
 * The one error type of the proxy. Whatever goes wrong while serving a request ends up as
 * an HttpError that says which status the client gets and whether the client connection
 * must be closed afterwards. It is caught in one place, {@link ClientConnection#serve}.
 *
 * <p>Status 0 means "no response is possible any more" (the response head has already
 * gone out, or the client is gone): the only thing left to do is close the connection, so
 * that a truncated body can never look complete (RFC 9112 section 6.3 / 7.1).
 */
final class HttpError extends Exception {
    /** nginx's "client closed request": logged for a client that left before its response, never sent. */
    static final int CLIENT_CLOSED_REQUEST = 499;

    final int status;
    final boolean close;
    /**
     * Not 0 when the client went away (closed, reset, or timed out sending or reading)
     * before its response was done: the status the access log gives the request if its
     * response had not started, as nginx does: 499, or 408 for a timeout.
     */
    final int clientGone;

    HttpError(int status, String reason, boolean close) {
        this(status, reason, close, 0);
    }

    private HttpError(int status, String reason, boolean close, int clientGone) {
        super(reason, null, false, false); // no stack trace: these are expected, and frequent under attack
        this.status = status;
        this.close = close;
        this.clientGone = clientGone;
    }

    /** Bad client input: answer with the status, then close (the framing can't be trusted). */
    static HttpError bad(int status, String reason) {
        return new HttpError(status, reason, true);
    }

    /** The connection can only be closed: nothing more may be written to the client. */
    static HttpError abort(String reason) {
        return new HttpError(0, reason, true);
    }

    /** The client went away: nothing can be sent to it any more (status 0), and the log says so. */
    static HttpError clientGone(String reason, IOException cause) {
        boolean timedOut = cause instanceof Wire.Timeout || cause.getCause() instanceof Wire.Timeout;
        return new HttpError(0, reason, true, timedOut ? 408 : CLIENT_CLOSED_REQUEST);
    }

    static String reasonPhrase(int status) {
        return switch (status) {
            case 100 -> "Continue";
            case 301 -> "Moved Permanently";
            case 308 -> "Permanent Redirect";
            case 400 -> "Bad Request";
            case 405 -> "Method Not Allowed";
            case 408 -> "Request Timeout";
            case 413 -> "Content Too Large";
            case 414 -> "URI Too Long";
            case 417 -> "Expectation Failed";
            case 431 -> "Request Header Fields Too Large";
            case 501 -> "Not Implemented";
            case 502 -> "Bad Gateway";
            case 503 -> "Service Unavailable";
            case 504 -> "Gateway Timeout";
            case 505 -> "HTTP Version Not Supported";
            default -> "Error";
        };
    }
}
