"""The design document's first program: fit y = 2x with one Linear layer.

Plain gradient descent written out by hand, as the document writes it: forward,
loss, backward, then update the weights under ``mt.no_grad()`` and zero their
gradients. Trains on x = 1..8 and predicts the held-out x = 11.

    python examples/linear_regression.py
"""
import micrograd.nn as mn
import micrograd.tensor as mt


def main(epochs=2000, learning_rate=0.01, seed=0):
    mt.manual_seed(seed)
    x = mt.Tensor([[float(i)] for i in range(1, 11)])
    y = x * 2
    x_train, y_train = x[:8], y[:8]

    model = mn.Sequential([mn.Linear(1, 1)])
    loss_fn = mt.MSELoss()

    for epoch in range(epochs):
        predictions = model(x_train)
        loss = loss_fn(predictions, y_train)
        loss.backward()
        with mt.no_grad():
            model[0].weight -= learning_rate * model[0].weight.grad
            model[0].bias -= learning_rate * model[0].bias.grad
        model[0].weight.grad.zero_()
        model[0].bias.grad.zero_()
        if epoch % 500 == 0:
            print(f"epoch {epoch:4d}  loss {loss.item():.6f}")

    with mt.no_grad():
        prediction = model(mt.Tensor([[11.0]])).item()
    print(f"prediction for x = 11: {prediction:.3f} (expected 22)")
    return prediction


if __name__ == "__main__":
    main()
