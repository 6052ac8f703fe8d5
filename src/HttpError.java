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
    final int status;
    final boolean close;

    HttpError(int status, String reason, boolean close) {
        super(reason, null, false, false); // no stack trace: these are expected, and frequent under attack
        this.status = status;
        this.close = close;
    }

    /** Bad client input: answer with the status, then close (the framing can't be trusted). */
    static HttpError bad(int status, String reason) {
        return new HttpError(status, reason, true);
    }

    /** The connection can only be closed: nothing more may be written to the client. */
    static HttpError abort(String reason) {
        return new HttpError(0, reason, true);
    }

    static String reasonPhrase(int status) {
        return switch (status) {
            case 100 -> "Continue";
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
