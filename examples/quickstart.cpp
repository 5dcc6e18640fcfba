// A model of a few layers and a few training steps: the README's usage example, verbatim.
#include <iostream>
#include <vector>

#include <stoch/stoch.hpp>

int main() {
  stoch::Generator rng(42);  // every random draw comes from here: same seed, same results

  // Gater (784 -> 400 tanh -> 2000 straight-through gates) times expert (784 -> 2000), then 10 logits.
  auto gater = stoch::Sequential(stoch::Linear<float>(784, 400, rng), stoch::Tanh<float>(400),
                                 stoch::Linear<float>(400, 2000, rng), stoch::StraightThrough<float>(2000));
  auto model = stoch::Sequential(
      stoch::GatedLayer<decltype(gater)>(std::move(gater), stoch::Linear<float>(784, 2000, rng)),
      stoch::Linear<float>(2000, 10, rng));
  stoch::SoftmaxCrossEntropy<float> loss(10);
  stoch::Sgd<float> sgd(model.parameters(), {.learning_rate = 0.1f, .momentum = 0.0f});

  stoch::Matrix<float> images = stoch::Matrix<float>::Random(784, 32).cwiseAbs();  // features x batch
  std::vector<int> labels(32);
  for (int j = 0; j < 32; ++j) labels[j] = j % 10;

  stoch::Context<float> ctx(stoch::Mode::train, rng);
  float first = 0, last = 0;
  for (int step = 0; step < 20; ++step) {
    const float value = loss.forward(model.forward(images, ctx), labels, ctx);  // fills ctx.example_loss
    model.backward(loss.backward(), ctx);                                       // accumulates gradients
    sgd.step();                                                                 // update, then clear
    (step == 0 ? first : last) = value;
  }
  std::cout << "loss " << first << " -> " << last << (last < first ? " (loss decreased)\n" : " (no progress)\n");
  return last < first ? 0 : 1;
}
