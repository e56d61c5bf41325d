// Logs the event's message (Lambda sends console output to CloudWatch Logs) and finishes
// with context.done(), as Lambda's classic Node.js logging example does.
exports.handler = (event, context) => {
  console.log(event.message);
  context.done();
};
