// Adds two numbers from the event: Lambda's classic first Node.js function (callback style).
exports.handler = (event, context, callback) => {
  callback(null, event.value1 + event.value2);
};
