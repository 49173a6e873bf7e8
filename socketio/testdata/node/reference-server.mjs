// The Node.js reference server the official Socket.IO protocol suite is
// written against, configured as the protocol document says: the expected
// records in expected/ come from it.  PORT=3100 node reference-server.mjs
// (PORT=0 picks a free port); it prints "listening on http://ADDR" once it
// accepts connections.
import { createServer } from "node:http";
import { Server } from "socket.io";

const httpServer = createServer();
const io = new Server(httpServer, {
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

httpServer.listen(Number(process.env.PORT || 3000), "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}`);
});
