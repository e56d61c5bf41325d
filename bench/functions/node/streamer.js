// Streams `parts` parts of `size` bytes, `gapMs` apart (awslambda.streamifyResponse).
exports.handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const part = Buffer.alloc(event.size, 120);
  for (let i = 0; i < event.parts; i++) {
    if (!responseStream.write(part)) {
      await new Promise((resolve) => responseStream.once('drain', resolve));
    }
    if (event.gapMs) await new Promise((resolve) => setTimeout(resolve, event.gapMs));
  }
  responseStream.end();
});
