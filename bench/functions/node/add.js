// The add handler in Node.js, Lambda's classic callback style: the runtimes group's figure.
exports.handler = (event, context, callback) => {
  callback(null, event.value1 + event.value2);
};
