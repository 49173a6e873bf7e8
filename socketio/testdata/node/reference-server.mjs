// The Node.js reference server the official Socket.IO protocol suite is
// written against, configured as the protocol document says: the expected
// records in expected/ come from it.  PORT=3100 node reference-server.mjs
import { Server } from "socket.io";

const io = new Server(Number(process.env.PORT || 3000), {
  pingInterval: 300,
  pingTimeout: 200,
  maxPayload: 1000000,
  connectTimeout: 1000,
  cors: { origin: "*" },
});

io.on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
  socket.on("message", (...args) => {
    socket.emit.apply(socket, ["message-back", ...args]);
  });
  socket.on("message-with-ack", (...args) => {
    const ack = args.pop();
    ack(...args);
  });
});

io.of("/custom").on("connection", (socket) => {
  socket.emit("auth", socket.handshake.auth);
});
