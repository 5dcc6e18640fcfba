set terminal pngcairo size 900,600
set grid
set key bottom right
set output 'elbo_vs_steps.png'
set xlabel 'training steps'
set ylabel 'train ELBO (nats)'
unset logscale y
plot 'learning_curves.dat' index 0 using 1:3 with linespoints title 'disarm', 'learning_curves.dat' index 1 using 1:3 with linespoints title 'arm', 'learning_curves.dat' index 2 using 1:3 with linespoints title 'rloo'
set output 'elbo_vs_time.png'
set xlabel 'training time (s, evaluations excluded)'
set ylabel 'train ELBO (nats)'
unset logscale y
plot 'learning_curves.dat' index 0 using 2:3 with linespoints title 'disarm', 'learning_curves.dat' index 1 using 2:3 with linespoints title 'arm', 'learning_curves.dat' index 2 using 2:3 with linespoints title 'rloo'
set output 'grad_variance.png'
set xlabel 'training steps'
set ylabel 'encoder gradient variance'
set logscale y
plot 'learning_curves.dat' index 0 using 1:4 with linespoints title 'disarm', 'learning_curves.dat' index 1 using 1:4 with linespoints title 'arm', 'learning_curves.dat' index 2 using 1:4 with linespoints title 'rloo'
