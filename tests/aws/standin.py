"""What every loopback stand-in server here shares.

TrackingServer: a threaded HTTP server for many parallel clients that
remembers its open connections, so stop() can cut keep-alive clients off
at once, and stays quiet when a client gives up mid-answer (normal in the
fault tests; anything else still gets its traceback).

BackgroundServer: start()/stop() and the context-manager protocol for an
object that holds a TrackingServer in self._server and a threading.Event
in self.stop_event; serve_forever runs on a daemon thread.
"""
import http.server
import socket
import sys
import threading


class TrackingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # many parallel clients (the default 5 drops SYNs)

    def __init__(self, addr, handler):
        self._conns = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_all(self):
        with self._conns_lock:
            conns = list(self._conns)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class BackgroundServer:
    thread_name = "stand-in"
    _thread = None

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.stop_event.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.close_all()
        self._server.server_close()

    def serve_until_interrupted(self, banner):
        """The CLI: prints banner, serves on this thread until Ctrl-C."""
        print(banner, flush=True)
        try:
            self._server.serve_forever(poll_interval=0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop_event.set()
            self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
