"""A small TCP proxy on loopback (threads), to cut one node off from PostgreSQL and let it back.

``stop()`` closes the listening socket and every connection through it, as a network that
went away does for the node behind it: its open connections end, new ones are refused.
``start()`` listens again on the same port, so the node's ``state.url`` stays valid.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class TcpProxy:
    def __init__(self, target_host: str = "127.0.0.1", target_port: int = 5432) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.connections = 0
        """Connections accepted, over every start."""
        self._listener: socket.socket | None = None
        self._accepting: threading.Thread | None = None
        self._open: set[socket.socket] = set()
        self._pipes: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        return self._listener is not None

    def start(self) -> TcpProxy:
        assert self._listener is None, "already running"
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = listener.getsockname()[1]
        self._stopping.clear()
        self._listener = listener
        self._accepting = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._accepting.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection; idempotent."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stopping.set()
        assert self._accepting is not None
        self._accepting.join(5)
        listener.close()
        with self._lock:
            sockets, self._open = set(self._open), set()
            pipes, self._pipes = list(self._pipes), []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for pipe in pipes:
            pipe.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._stopping.is_set():
                    client.close()
                    upstream.close()
                    return
                self.connections += 1
                self._pipes = [p for p in self._pipes if p.is_alive()]
                self._open.update((client, upstream))
                ends = [2]  # the second pipe to finish closes both sockets
                for source, sink in ((client, upstream), (upstream, client)):
                    pipe = threading.Thread(
                        target=self._pipe, args=(source, sink, ends), daemon=True
                    )
                    self._pipes.append(pipe)
                    pipe.start()

    def _pipe(self, source: socket.socket, sink: socket.socket, ends: list[int]) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):  # one side ended: end the other
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            ends[0] -= 1
            if ends[0] == 0 and source in self._open:  # stop() closes the rest itself
                self._open -= {source, sink}
                source.close()
                sink.close()
