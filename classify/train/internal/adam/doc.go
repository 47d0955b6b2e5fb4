// Package adam is the optimiser the repository's perceptron trainers share
// (the cell model's feature head, classify/train, and the detector's
// object filter, classify/train/object): full-batch Adam with an L2
// penalty on the weights but not on the biases. The convolutional head
// (classify/train/cnn.go) keeps its own float32 AdamW.
package adam
