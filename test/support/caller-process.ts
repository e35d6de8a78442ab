// A caller in a process of its own, so a test can drop it the way a crashed app or a dead phone
// does: SIGKILL, no leave. Usage: node caller-process.ts <livekit url> <token>; prints "joined".
import { Room } from '@livekit/rtc-node';

const [url, token] = process.argv.slice(2);
const room = new Room();
await room.connect(url!, token!, { autoSubscribe: false, dynacast: false });
console.log('joined');
setInterval(() => {}, 1 << 30);
